import { describe, expect, it } from 'vitest';
import { checkHistories, runRace, unfairKinds } from '../load/race.js';
import { EscrowClient } from './helpers/client.js';
import { EngineProcess, useEngine } from './helpers/engine.js';
import { balance } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();

async function expectMoneyConserved(r: Awaited<ReturnType<typeof runRace>>, amount: number) {
  await ledgerCaughtUp(t.engine);
  const released = r.milestoneIds.filter((id) => r.winners[id] === 'release').length;
  const total = amount * r.milestoneIds.length;
  expect(await balance(t.client, r.employer)).toEqual({
    available: (total - released * amount).toFixed(2),
    held: '0.00',
    incoming: '0.00',
  });
  expect(await balance(t.client, r.freelancer)).toEqual({ available: (released * amount).toFixed(2), held: '0.00', incoming: '0.00' });
  await expectLedgerSound(t.engine);
}

describe('release/cancel races', () => {
  it('100 milestones, 10 releases and 10 cancels each at once: exactly one winner each, money conserved', async () => {
    const r = await runRace({ clients: [t.client], milestones: 100, contenders: 20, amount: '10.00', prefix: 'one' });
    expect(r.winnersHistogram).toEqual({ '1': 100 });
    // Shuffled contenders: releases and cancels each win a fair share.
    expect(unfairKinds(r, 0.2)).toEqual([]);
    expect(r.contendedKinds).toEqual({ release: 100, cancel: 100 });
    expect(Object.values(r.loserCodes).reduce((a, b) => a + b, 0)).toBe(100 * 19);
    // The answers agree with the log; and the checker sees a disagreement when one is planted.
    expect(await checkHistories([t.client], r)).toEqual([]);
    const skewed = {
      ...r,
      winners: {
        ...r.winners,
        [r.milestoneIds[0]!]: r.winners[r.milestoneIds[0]!] === 'release' ? ('cancel' as const) : ('release' as const),
      },
    };
    const found = await checkHistories([t.client], skewed);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((p) => p.startsWith(`${r.milestoneIds[0]!}:`))).toBe(true);
    expect(Object.keys(r.loserCodes).every((c) => c === 'FAILED_PRECONDITION' || c === 'ABORTED')).toBe(true);
    await expectMoneyConserved(r, 10);
  });

  it('the same race across two gateway processes on one NATS: still one winner each', async () => {
    const gateways = await Promise.all([EngineProcess.start('gateway', t.namespace), EngineProcess.start('gateway', t.namespace)]);
    const clients = gateways.map((g) => new EscrowClient(g.address));
    try {
      const r = await runRace({ clients, milestones: 100, contenders: 20, amount: '5.00', prefix: 'two' });
      expect(r.winnersHistogram).toEqual({ '1': 100 });
      expect(unfairKinds(r, 0.2)).toEqual([]);
      await expectMoneyConserved(r, 5);
    } finally {
      for (const c of clients) c.close();
      await Promise.all(gateways.map((g) => g.stop()));
    }
  });
});

describe('the race harness is confinable', () => {
  it('--spawn-gateways with --namespace and --grpc-port-base: runs there, on those ports, and keeps the namespace', async () => {
    const { spawnSync } = await import('node:child_process');
    const { freshNamespace, dropNamespace, services } = await import('./helpers/engine.js');
    const { freePort } = await import('../src/dev/embedded.js');
    const ns = freshNamespace();
    const port = await freePort();
    try {
      const s = services();
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'load/harness.ts',
          '--spawn-gateways',
          '1',
          '--namespace',
          ns,
          '--grpc-port-base',
          String(port),
          '--milestones',
          '20',
          '--contenders',
          '4',
          '--min-win-share',
          '0',
        ],
        {
          env: { ...process.env, DATABASE_URL: s.databaseUrl, NATS_URL: s.natsUrl },
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!).race;
      expect(summary).toMatchObject({ milestones: 20, gateways: 1, targets: [`127.0.0.1:${port}`], audit: 'pass', historyProblems: [] });
      // The namespace given is kept, with the race's milestones in it.
      const pg = (await import('pg')).default;
      const db = new pg.Client({ connectionString: s.databaseUrl });
      await db.connect();
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM "${ns}".milestones`);
      await db.end();
      expect(rows[0].n).toBe(20);
    } finally {
      await dropNamespace(ns);
    }
  }, 150_000);
});
