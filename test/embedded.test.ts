import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EscrowClient } from '../src/client.js';
import { EngineProcess } from '../tools/processes.js';
import { freePort } from '../src/dev/embedded.js';
import { PAYMENTS, usd } from './helpers/client.js';
import { key } from './helpers/flows.js';

/** The embedded default (`npm start`) as a user runs it: its own data folder, nothing configured. */
describe('the embedded default', () => {
  let dir: string;
  let first: EngineProcess;
  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: '',
    NATS_URL: '',
    AUTH_JWT_SECRET: '',
    ESCROW_NAMESPACE: '',
    ESCROW_DATA_DIR: dir,
    LOG_LEVEL: 'silent',
    ...extra,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'escrow-embedded-'));
    chmodSync(dir, 0o755);
    first = await EngineProcess.start('all', env({ GRPC_ADDRESS: `127.0.0.1:${await freePort()}` }));
  }, 120_000);
  afterAll(async () => {
    await first.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a second start on the same data folder refuses (exit 75) and the first goes on serving', async () => {
    const second = await EngineProcess.start('all', env({ GRPC_ADDRESS: `127.0.0.1:${await freePort()}` })).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(second).toMatch(/exited early \(75\).*another engine \(pid \d+\) runs on the data folder/s);
    const c = new EscrowClient(first.address, readFileSync(join(dir, 'dev-secret'), 'utf8').trim());
    try {
      const r = await c.a('Deposit', PAYMENTS, { user_id: 'still-here', amount: usd('1.00'), external_reference: key() });
      expect(r.status).toBe('APPLIED');
    } finally {
      c.close();
    }
  });

  it('the tools find it through its endpoints file: npm run audit with nothing configured', () => {
    const endpoints = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8'));
    expect(endpoints).toMatchObject({ grpcAddress: first.address, namespace: 'escrow' });
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/audit.ts'], {
      env: { ...process.env, ...env() },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ audit: 'pass' });
  });
});

describe('a data folder PostgreSQL cannot reach', () => {
  it('as root in a 0700 folder: a clear message and exit 73, not a stack', async () => {
    if (process.getuid?.() !== 0) return; // Only root runs embedded PostgreSQL as another user.
    const parent = mkdtempSync(join(tmpdir(), 'escrow-0700-'));
    const dir = join(parent, 'data');
    mkdirSync(dir);
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'all'], {
        env: {
          ...process.env,
          DATABASE_URL: '',
          NATS_URL: '',
          AUTH_JWT_SECRET: '',
          ESCROW_DATA_DIR: dir,
          LOG_LEVEL: 'silent',
          GRPC_ADDRESS: `127.0.0.1:${await freePort()}`,
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status).toBe(73);
      expect(r.stderr).toMatch(/embedded PostgreSQL cannot use .*chmod 755/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  }, 90_000);
});
