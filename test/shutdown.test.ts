import { describe, expect, it } from 'vitest';
import { EscrowClient, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, freshNamespace } from './helpers/engine.js';
import { key } from './helpers/flows.js';

describe('shutdown', () => {
  it('SIGTERM with 300 calls in flight: every call admitted before it is answered, then the process exits 0', async () => {
    const ns = freshNamespace();
    const engine = await EngineProcess.start('all', ns);
    const c = new EscrowClient(engine.address);
    try {
      await c.a('Deposit', PAYMENTS, { user_id: 'warm', amount: usd('1.00'), external_reference: key() });
      const calls = Array.from({ length: 300 }, (_, i) =>
        c.a('Deposit', PAYMENTS, { user_id: `u-${i % 10}`, amount: usd('1.00'), external_reference: key() }).then(
          (r) => String(r.status),
          (e) => String(e.reason ?? e.code),
        ),
      );
      // The calls are on the wire; then the signal.
      await new Promise((r) => setTimeout(r, 30));
      const exited = new Promise<number | null>((resolve) => engine.child!.once('exit', (code) => resolve(code)));
      engine.child!.kill('SIGTERM');
      const answers = await Promise.all(calls);
      const byAnswer: Record<string, number> = {};
      for (const a of answers) byAnswer[a] = (byAnswer[a] ?? 0) + 1;
      console.log(`SHUTDOWN ${JSON.stringify(byAnswer)}`);
      expect(byAnswer.APPLIED ?? 0).toBeGreaterThan(0);
      // None was dropped mid-way: each was applied (or, at the very end, still pending in the ledger).
      expect(answers.filter((a) => a !== 'APPLIED' && a !== 'PENDING')).toEqual([]);
      expect(await exited).toBe(0);
    } finally {
      c.close();
      await engine.kill();
      await dropNamespace(ns);
    }
  });

  it('the same in embedded mode: the embedded PostgreSQL stops after the calls, not before', async () => {
    const { chmodSync, mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { freePort } = await import('../src/dev/embedded.js');
    const { EngineProcess: Proc } = await import('../load/processes.js');
    const dir = mkdtempSync(join(tmpdir(), 'escrow-embedded-'));
    // As root the embedded PostgreSQL runs as its own user, which must reach the folder (mkdtemp makes it 0700).
    chmodSync(dir, 0o755);
    const engine = await Proc.start('all', { DATABASE_URL: '', NATS_URL: '', ESCROW_DATA_DIR: dir, GRPC_ADDRESS: `127.0.0.1:${await freePort()}`, LOG_LEVEL: 'silent' });
    const { EscrowClient: Base } = await import('../load/client.js');
    const c = new Base(engine.address, readFileSync(join(dir, 'dev-secret'), 'utf8').trim());
    try {
      await c.a('Deposit', PAYMENTS, { user_id: 'warm', amount: usd('1.00'), external_reference: key() });
      const calls = Array.from({ length: 300 }, (_, i) =>
        c.a('Deposit', PAYMENTS, { user_id: `u-${i % 10}`, amount: usd('1.00'), external_reference: key() }).then(
          (r) => String(r.status),
          (e) => String(e.reason ?? e.code),
        ),
      );
      await new Promise((r) => setTimeout(r, 30));
      const exited = new Promise<number | null>((resolve) => engine.child!.once('exit', (code) => resolve(code)));
      engine.child!.kill('SIGTERM');
      const answers = await Promise.all(calls);
      const byAnswer: Record<string, number> = {};
      for (const a of answers) byAnswer[a] = (byAnswer[a] ?? 0) + 1;
      console.log(`SHUTDOWN embedded ${JSON.stringify(byAnswer)}`);
      expect(answers.filter((a) => a !== 'APPLIED' && a !== 'PENDING')).toEqual([]);
      expect(await exited).toBe(0);
    } finally {
      c.close();
      await engine.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
