import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { freePort } from '../src/dev/embedded.js';
import { engineEnv, freshNamespace, services } from './helpers/engine.js';

/** Runs `src/main.ts gateway` with `env` until it exits; its exit code and what it printed. */
function run(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'gateway'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += String(d)));
    child.stderr.on('data', (d) => (output += String(d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('start-up failures name the dependency and its address', () => {
  it('PostgreSQL unreachable: exit 69 with the address, without the password', async () => {
    const port = await freePort();
    const r = await run({
      ...engineEnv(freshNamespace()),
      DATABASE_URL: `postgres://postgres:s3cret@127.0.0.1:${port}/test`,
      GRPC_ADDRESS: `127.0.0.1:${await freePort()}`,
    });
    expect(r.code).toBe(69);
    expect(r.output).toContain(`cannot reach PostgreSQL at postgres://postgres:***@127.0.0.1:${port}/test`);
    expect(r.output).not.toContain('s3cret');
  });

  it('NATS unreachable: exit 69 with the address', async () => {
    const port = await freePort();
    const r = await run({
      ...engineEnv(freshNamespace()),
      NATS_URL: `nats://127.0.0.1:${port}`,
      DATABASE_URL: services().databaseUrl,
      GRPC_ADDRESS: `127.0.0.1:${await freePort()}`,
    });
    expect(r.code).toBe(69);
    expect(r.output).toContain(`cannot reach NATS at nats://127.0.0.1:${port}`);
  });
});
