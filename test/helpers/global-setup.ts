import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, startNatsServer } from '../../src/dev/embedded.js';
import { createLogger } from '../../src/log.js';

/**
 * Uses DATABASE_URL and NATS_URL when set (CI sets them to the machine's services); otherwise
 * starts the same embedded default as `npm start`, under ./.data/test.
 */
export default async function setup(project: TestProject) {
  const stops: (() => Promise<void>)[] = [];
  let databaseUrl = process.env.DATABASE_URL;
  let natsUrl = process.env.NATS_URL;
  const logger = createLogger('silent');
  if (!natsUrl) {
    const nats = await startNatsServer('./.data/test');
    stops.push(nats.stop);
    natsUrl = nats.url;
  }
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres('./.data/test', logger);
    stops.push(pg.stop);
    databaseUrl = pg.url;
  }
  project.provide('databaseUrl', databaseUrl);
  project.provide('natsUrl', natsUrl);
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    natsUrl: string;
  }
}
