import { dropNamespace as dropRunNamespace } from '../../tools/namespace.js';
import { EngineProcess as BaseProcess, LOAD_TOOL_LIMITS } from '../../tools/processes.js';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.js';
import { freePort } from '../../src/dev/embedded.js';
import { Engine } from '../../src/engine.js';
import { createLogger } from '../../src/log.js';
import { EscrowClient, TEST_SECRET } from './client.js';
import { invalidEvents } from './event-shapes.js';

export function services(): { databaseUrl: string; natsUrl: string } {
  return { databaseUrl: inject('databaseUrl'), natsUrl: inject('natsUrl') };
}

export function freshNamespace(): string {
  return `t${randomBytes(5).toString('hex')}`;
}

/** The environment of an engine process of this test run. */
export function engineEnv(namespace: string, extra: Record<string, string> = {}): Record<string, string> {
  const s = services();
  return {
    DATABASE_URL: s.databaseUrl,
    NATS_URL: s.natsUrl,
    AUTH_JWT_SECRET: TEST_SECRET,
    ESCROW_NAMESPACE: namespace,
    LOG_LEVEL: 'silent',
    ESCROW_LEDGER_STANDBY_POLL_MS: '200',
    ESCROW_LEDGER_WAIT_MS: '10000',
    ESCROW_FUNDING_WAIT_MS: '10000',
    ESCROW_MAILBOX_MAX: '1000',
    ...LOAD_TOOL_LIMITS,
    ...extra,
  };
}

export interface TestEngine {
  namespace: string;
  engine: Engine;
  client: EscrowClient;
  config: Config;
  db: pg.Pool;
  stop(): Promise<void>;
}

/** An in-process engine (gateway and/or worker) on a fresh namespace. */
export async function startEngine(
  o: { namespace?: string; gateway?: boolean; worker?: boolean; env?: Record<string, string>; now?: () => Date } = {},
): Promise<TestEngine> {
  const namespace = o.namespace ?? freshNamespace();
  const env = engineEnv(namespace, { GRPC_ADDRESS: `127.0.0.1:${await freePort()}`, ...o.env });
  const config = loadConfig(env);
  const engine = await Engine.start({
    config: { ...config, databaseUrl: env.DATABASE_URL!, natsUrl: env.NATS_URL! },
    gateway: o.gateway ?? true,
    worker: o.worker ?? true,
    logger: createLogger('silent'),
    ...(o.now ? { now: o.now } : {}),
    onFatal: (err) => {
      throw err;
    },
  });
  const client = new EscrowClient(config.grpcAddress);
  const db = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2, options: `-c search_path=${namespace}` });
  return {
    namespace,
    engine,
    client,
    config,
    db,
    stop: async () => {
      client.close();
      await engine.stop();
      await db.end();
    },
  };
}

/** Removes what a namespace left in NATS and Postgres. */
export async function dropNamespace(namespace: string): Promise<void> {
  const s = services();
  await dropRunNamespace(s.databaseUrl, s.natsUrl, namespace);
}

/** An engine role as a separate process on a namespace of this test run. */
export const EngineProcess = {
  async start(role: 'gateway' | 'worker' | 'all', namespace: string, extra: Record<string, string> = {}): Promise<BaseProcess> {
    return BaseProcess.start(role, engineEnv(namespace, { GRPC_ADDRESS: `127.0.0.1:${await freePort()}`, ...extra }));
  },
};

/** Polls `fn` until it returns without throwing, or rethrows after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/**
 * Starts an engine before the file's tests and stops it, removing its namespace, after them.
 * The returned object stands for the engine once started.
 */
export function useEngine(o: Parameters<typeof startEngine>[0] = {}): TestEngine {
  let started: TestEngine | null = null;
  beforeAll(async () => {
    started = await startEngine(o);
  });
  afterAll(async () => {
    if (!started) return;
    // Every event this file's tests made has its type's shape.
    const events = await invalidEvents(started.engine).catch((err: Error) => ({
      checked: 0,
      problems: [`could not read the stream: ${err.message}`],
    }));
    await started.stop();
    if (!o.namespace) await dropNamespace(started.namespace);
    expect(events.problems).toEqual([]);
  });
  return new Proxy({} as TestEngine, {
    get: (_target, prop) => {
      if (!started) throw new Error('the engine is used before beforeAll started it');
      return Reflect.get(started, prop, started) as unknown;
    },
  });
}

/** A clock tests move by hand: days pass in a call. Starts at the real time. */
export class TestClock {
  private offsetMs = 0;
  readonly now = (): Date => new Date(Date.now() + this.offsetMs);
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
