import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { freePort } from '../src/dev/embedded.js';
import { eventually } from './helpers/engine.js';
import { currentNatsServer } from '../tools/nats-cluster.js';

const ROOT = resolve(import.meta.dirname, '..');
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

describe('the compose file', () => {
  const compose = has('docker-compose');
  it.skipIf(!compose)(
    'validates, and holds what it promises: three NATS nodes, scalable gateways behind an ingress, health, restarts, secrets from .env',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'compose-'));
      const env = join(dir, '.env');
      writeFileSync(env, readFileSync(join(ROOT, '.env.example'), 'utf8').replace(/=$/gm, '=0123456789abcdef0123'));
      const out = execFileSync('docker-compose', ['--env-file', env, 'config'], { cwd: ROOT, encoding: 'utf8' });
      for (const s of [
        'nats1:',
        'nats2:',
        'nats3:',
        'ingress:',
        "ESCROW_STREAM_REPLICAS: '3'",
        'NATS_URL: nats://nats1:4222,nats://nats2:4222,nats://nats3:4222',
        'NATS_USER: engine',
      ])
        expect(out).toContain(s);
      // The only host port is the ingress's, on loopback; gateways scale without colliding.
      expect(out.match(/published|:\d+:\d+\/tcp|- \d+:\d+/g)?.length ?? 0).toBeLessThanOrEqual(1);
      expect(out).toContain('127.0.0.1:50051:50051');
      expect(out.match(/restart: unless-stopped/g)!.length).toBeGreaterThanOrEqual(7);
      expect(out.match(/condition: service_healthy/g)!.length).toBeGreaterThanOrEqual(9);
      // Without the secrets it refuses, naming one.
      writeFileSync(join(dir, 'empty.env'), '');
      const bare = spawnSync('docker-compose', ['--env-file', join(dir, 'empty.env'), 'config', '-q'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { PATH: process.env.PATH },
      });
      expect(bare.status).not.toBe(0);
      expect(bare.stderr).toMatch(/set [A-Z_]+ in \.env/);
    },
  );
});

describe('the NATS accounts of deploy/nats-cluster.conf', () => {
  const bin = currentNatsServer();
  if (!bin)
    console.warn(
      'deploy.test: no nats-server 2.10+ (NATS_SERVER_BIN, or .data/nats-2.10 built by .ci/run); the NATS account checks are skipped',
    );
  it.skipIf(!bin)(
    'parse on nats-server 2.10; the engine user publishes, the reader follows the stream and can publish nothing on it',
    async () => {
      const conf = readFileSync(join(ROOT, 'deploy/nats-cluster.conf'), 'utf8');
      const env = {
        NATS_SERVER_NAME: 'n1',
        NATS_ENGINE_PASSWORD: 'engine-pass-1',
        NATS_READER_PASSWORD: 'reader-pass-1',
        NATS_SYS_PASSWORD: 'sys-pass-1',
      };
      expect(
        spawnSync(bin!, ['-c', join(ROOT, 'deploy/nats-cluster.conf'), '-t'], { env: { ...process.env, ...env }, encoding: 'utf8' }).status,
      ).toBe(0);
      // One node of it (no routes), on loopback.
      const dir = mkdtempSync(join(tmpdir(), 'nats-acct-'));
      const port = await freePort();
      const single = conf
        .replace(/^cluster \{[\s\S]*?^\}/m, '')
        .replace('store_dir: /data', `store_dir: ${dir}`)
        .replace('listen: 0.0.0.0:4222', `listen: 127.0.0.1:${port}`)
        .replace('http: 0.0.0.0:8222', '');
      writeFileSync(join(dir, 'nats.conf'), single);
      const server = spawn(bin!, ['-c', join(dir, 'nats.conf')], { env: { ...process.env, ...env }, stdio: 'ignore' });
      const url = `nats://127.0.0.1:${port}`;
      try {
        const engine = await eventually(() => connect({ servers: url, user: 'engine', pass: env.NATS_ENGINE_PASSWORD }), 10_000);
        await (await jetstreamManager(engine)).streams.add({ name: 'ESCROW', subjects: ['escrow.>'], allow_direct: true });
        await jetstream(engine).publish('escrow.milestone.m1', 'created');
        const reader = await connect({ servers: url, user: 'reader', pass: env.NATS_READER_PASSWORD });
        const next = await (await jetstream(reader).consumers.get('ESCROW')).next({ expires: 2_000 });
        expect(next?.string()).toBe('created');
        expect(
          (await (await jetstreamManager(reader)).direct.getMessage('ESCROW', { last_by_subj: 'escrow.milestone.m1' }))?.string(),
        ).toBe('created');
        await expect(jetstream(reader).publish('escrow.milestone.m1', 'forged', { timeout: 1_000 })).rejects.toThrow(
          /Permissions Violation/,
        );
        await expect((await jetstreamManager(reader)).streams.delete('ESCROW')).rejects.toThrow(/Permissions Violation/);
        await expect(connect({ servers: url, user: 'engine', pass: 'wrong' })).rejects.toThrow();
        await reader.close();
        await engine.close();
      } finally {
        server.kill('SIGTERM');
      }
    },
  );
});
