import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * A current nats-server (2.10+) for the tests that need one: NATS_SERVER_BIN, else the one
 * .ci/run builds from ../shared/nats (into .data/nats-2.10/), else null, and the caller says
 * what it skips.
 */
export function currentNatsServer(): string | null {
  const given = process.env.NATS_SERVER_BIN;
  if (given && existsSync(given)) return given;
  const built = resolve(import.meta.dirname, '../../.data/nats-2.10/nats-server');
  return existsSync(built) ? built : null;
}
