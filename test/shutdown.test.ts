import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EscrowClient as BaseClient } from '../src/client.js';
import { EngineProcess as Proc } from '../tools/processes.js';
import { freePort } from '../src/dev/embedded.js';
import { EscrowClient, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, engineEnv, eventually, freshNamespace } from './helpers/engine.js';
import { key } from './helpers/flows.js';

/** 300 deposits in flight, then SIGTERM: the answers by kind, and the exit code. */
async function sigtermUnderLoad(engine: Proc, c: BaseClient): Promise<{ answers: Record<string, number>; exitCode: number | null }> {
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
  const signalled = Date.now();
  engine.child!.kill('SIGTERM');
  const answers: Record<string, number> = {};
  for (const a of await Promise.all(calls)) answers[a] = (answers[a] ?? 0) + 1;
  const exitCode = await exited;
  // How long the drain took: a figure for the record (a call cut off by the drain's bound shows as CANCELLED).
  answers[`exit after ${Math.round((Date.now() - signalled) / 100) / 10} s`] = 0;
  return { answers, exitCode };
}

describe('shutdown', () => {
  it('SIGTERM with 300 calls in flight: every call admitted before it is answered, then the process exits 0', async () => {
    const ns = freshNamespace();
    const engine = await EngineProcess.start('all', ns);
    const c = new EscrowClient(engine.address);
    try {
      const r = await sigtermUnderLoad(engine, c);
      console.log(`SHUTDOWN ${JSON.stringify(r.answers)}`);
      // None was dropped mid-way: each was applied (or, at the very end, still pending in the ledger).
      expect(Object.keys(r.answers).filter((a) => a !== 'APPLIED' && a !== 'PENDING' && !a.startsWith('exit after'))).toEqual([]);
      expect(r.exitCode).toBe(0);
    } finally {
      c.close();
      await engine.kill();
      await dropNamespace(ns);
    }
  });

  it('the same in embedded mode: the embedded PostgreSQL stops after the calls, not before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'escrow-embedded-'));
    // As root the embedded PostgreSQL runs as its own user, which must reach the folder (mkdtemp makes it 0700).
    chmodSync(dir, 0o755);
    const engine = await Proc.start('all', {
      DATABASE_URL: '',
      NATS_URL: '',
      ESCROW_DATA_DIR: dir,
      GRPC_ADDRESS: `127.0.0.1:${await freePort()}`,
      LOG_LEVEL: 'silent',
    });
    const c = new BaseClient(engine.address, readFileSync(join(dir, 'dev-secret'), 'utf8').trim());
    try {
      const r = await sigtermUnderLoad(engine, c);
      console.log(`SHUTDOWN embedded ${JSON.stringify(r.answers)}`);
      expect(Object.keys(r.answers).filter((a) => a !== 'APPLIED' && a !== 'PENDING' && !a.startsWith('exit after'))).toEqual([]);
      expect(r.exitCode).toBe(0);
    } finally {
      c.close();
      await engine.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

/** The pids of a process tree (the process and every descendant), from /proc. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(
        readFileSync(`/proc/${entry}/stat`, 'utf8')
          .replace(/^.*\) /, '')
          .split(' ')[1],
      );
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

describe('shutdown through npm', () => {
  // npm start execs node with tsx as its loader: npm passes the signal straight to the engine.
  // (Behind the tsx CLI, a child busy with calls that does not report the signal within 30 ms is SIGKILLed.)
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s to npm (not node): the calls in flight are applied and the whole tree exits',
    async (signal) => {
      const ns = freshNamespace();
      const port = await freePort();
      const env = { ...process.env, ...engineEnv(ns, { GRPC_ADDRESS: `127.0.0.1:${port}` }) };
      const child = spawn('npm', ['start'], { cwd: resolve(import.meta.dirname, '..'), env, stdio: 'ignore' });
      const c = new EscrowClient(`127.0.0.1:${port}`);
      try {
        await eventually(() => c.a('Deposit', PAYMENTS, { user_id: 'warm', amount: usd('1.00'), external_reference: key() }), 30_000, 200);
        const pids = tree(child.pid!);
        const cmd = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        const calls = Array.from({ length: 200 }, (_, i) =>
          c.a('Deposit', PAYMENTS, { user_id: `u-${i % 10}`, amount: usd('1.00'), external_reference: key() }).then(
            (r) => String(r.status),
            (e) => String(e.reason ?? e.code),
          ),
        );
        await new Promise((r) => setTimeout(r, 30));
        process.kill(child.pid!, signal);
        const answers: Record<string, number> = {};
        for (const a of await Promise.all(calls)) answers[a] = (answers[a] ?? 0) + 1;
        console.log(`SHUTDOWN via npm ${signal} ${JSON.stringify(answers)}`);
        expect(Object.keys(answers).filter((a) => a !== 'APPLIED' && a !== 'PENDING')).toEqual([]);
        const alive = () =>
          pids
            .filter((p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '))
            .map((p) => `${p} ${cmd(p)}`);
        await eventually(async () => expect(alive()).toEqual([]), 15_000);
      } finally {
        c.close();
        for (const p of tree(child.pid!).reverse()) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await dropNamespace(ns);
      }
    },
    60_000,
  );
});
