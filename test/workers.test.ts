import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineProcess as BaseProcess } from '../tools/processes.js';
import { runRace } from '../load/race.js';
import { leaseSessionPrefix } from '../src/ledger/worker.js';
import { EscrowClient, failure, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, eventually, freshNamespace, services, startEngine, type TestEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

/**
 * Several ledger workers on one namespace: one holds the lease and applies the stream in
 * order, the others stand by. Each reproduction here once failed with two workers sharing a
 * durable consumer (events applied out of stream order; a uniqueness check crashing a worker).
 */
describe('three ledger workers', () => {
  let t: TestEngine;
  let workers: BaseProcess[];
  const ns = freshNamespace();

  beforeAll(async () => {
    // The gateway in this process, no worker here: the three workers are processes we can kill.
    t = await startEngine({ namespace: ns, worker: false, env: { ESCROW_FUNDING_WAIT_MS: '20000' } });
    workers = await Promise.all([0, 1, 2].map(() => EngineProcess.start('worker', ns, { ESCROW_LEDGER_STANDBY_POLL_MS: '100' })));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await t.stop();
    await dropNamespace(ns);
  });

  const alive = () => workers.filter((w) => w.child && w.child.exitCode === null && w.child.signalCode === null).length;

  /** The process whose session holds the lease, from pg_stat_activity. */
  async function activeWorker(): Promise<BaseProcess> {
    return eventually(async () => {
      const { rows } = await t.db.query<{ name: string }>(
        'SELECT application_name AS name FROM pg_stat_activity WHERE starts_with(application_name, $1)',
        [leaseSessionPrefix(ns)],
      );
      expect(rows).toHaveLength(1);
      const pid = Number(rows[0]!.name.slice(leaseSessionPrefix(ns).length));
      // A killed worker's session may linger a moment: only a live process counts.
      const active = workers.find((w) => w.child?.pid === pid && w.child.exitCode === null && w.child.signalCode === null);
      expect(active).toBeDefined();
      return active!;
    }, 10_000);
  }

  it('a freelancer who withdraws as soon as a release is answered is never refused (stream order)', async () => {
    const c = t.client;
    // Four lanes at once, so several workers would have had batches in flight together.
    const lanes = await Promise.all(
      [0, 1, 2, 3].map(async (lane) => {
        const emp = `emp-order-${lane}`;
        const fl = `fl-order-${lane}`;
        await deposit(c, emp, '200.00');
        const refused: string[] = [];
        for (let i = 0; i < 20; i++) {
          const id = await funded(c, emp, fl, '10.00', `p-order-${lane}`);
          await c.m('ReleaseMilestone', emp, { milestone_id: id, idempotency_key: key() });
          const w = await c.a('Withdraw', fl, { amount: usd('10.00'), external_reference: key('wd') }).then(
            (r) => r.status as string,
            (e) => String(e.reason),
          );
          if (w !== 'APPLIED') refused.push(w);
        }
        await expectBalance(c, fl, { available: '0.00', held: '0.00', incoming: '0.00' });
        return refused;
      }),
    );
    expect(lanes.flat()).toEqual([]);
    expect(alive()).toBe(3);
  });

  it('one user with no money cannot crash a worker: the same reference in two currencies at once', async () => {
    const c = t.client;
    for (let round = 0; round < 5; round++) {
      const ref = key('dup');
      const answers = await Promise.all(
        ['EUR', 'USD'].map((currency) =>
          failure(c.a('Withdraw', 'penniless', { amount: { currency_code: currency, amount: '1.00' }, external_reference: ref })),
        ),
      );
      // Each is refused (no funds, or the reference is taken by the other), never accepted.
      for (const a of answers) {
        expect(a.code === grpc.status.FAILED_PRECONDITION || a.code === grpc.status.INVALID_ARGUMENT).toBe(true);
        expect(['INSUFFICIENT_FUNDS', 'EXTERNAL_REFERENCE_REUSED']).toContain(a.reason);
      }
    }
    // Every worker is alive and money still moves.
    expect(alive()).toBe(3);
    await deposit(c, 'penniless', '2.00');
    expect((await balance(c, 'penniless')).available).toBe('2.00');
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });

  it('the release/cancel race: one winner each, money conserved', async () => {
    const r = await runRace({ clients: [t.client], milestones: 60, contenders: 10, amount: '1.00', prefix: 'w3' });
    expect(r.winnersHistogram).toEqual({ '1': 60 });
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });

  it('the active worker killed under load: a standby takes over, every event applied once', async () => {
    const c = t.client;
    await deposit(c, 'emp-kill', '500.00');
    const work = (async () => {
      const ids: string[] = [];
      for (let round = 0; round < 6; round++) {
        const batch = await Promise.all(Array.from({ length: 5 }, () => funded(c, 'emp-kill', 'fl-kill', '10.00', 'p-kill')));
        ids.push(...batch);
        await Promise.all(
          batch.map((id, i) =>
            c.m(i % 2 ? 'ReleaseMilestone' : 'CancelMilestone', i % 2 ? 'emp-kill' : 'fl-kill', {
              milestone_id: id,
              idempotency_key: key(),
            }),
          ),
        );
      }
      return ids;
    })();
    await new Promise((r) => setTimeout(r, 500));
    const victim = await activeWorker();
    await victim.kill();
    // Another one holds the lease now.
    expect(await activeWorker()).not.toBe(victim);
    const ids = await work;
    expect(ids).toHaveLength(30);
    // Two of every five released (12), the rest returned (18).
    await expectBalance(c, 'fl-kill', { available: '120.00', held: '0.00', incoming: '0.00' });
    await expectBalance(c, 'emp-kill', { available: '380.00', held: '0.00', incoming: '0.00' });
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
    await victim.spawn();
    expect(alive()).toBe(3);
  });
});

describe('the ledger fence', () => {
  it('a batch applied with a stale cursor commits nothing', async () => {
    const t = await startEngine();
    try {
      await deposit(t.client, 'emp-f', '5.00');
      await ledgerCaughtUp(t.engine);
      const { applyBatch, LedgerFenced } = await import('../src/ledger/apply.js');
      const { allEvents } = await import('./helpers/ledger.js');
      const before = (await t.db.query('SELECT stream_seq::int AS s FROM ledger_cursor')).rows[0].s;
      const events = await allEvents(t);
      const client = await t.engine.pool.connect();
      try {
        // A worker that believes the cursor is still at 0 (it lost the lease long ago).
        await expect(applyBatch(client, events, { from: 0, to: Number(before) + 1, published: 0 })).rejects.toBeInstanceOf(LedgerFenced);
      } finally {
        client.release();
      }
      expect((await t.db.query('SELECT stream_seq::int AS s FROM ledger_cursor')).rows[0].s).toBe(before);
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});

describe('a worker killed between commit and publish', () => {
  it('leaves its outcomes in the outbox; the next worker publishes them and the deposit is answered', async () => {
    const ns = freshNamespace();
    const t = await startEngine({ namespace: ns, worker: false, env: { ESCROW_FUNDING_WAIT_MS: '20000' } });
    const first = await EngineProcess.start('worker', ns);
    await deposit(t.client, 'emp-ob', '10.00');
    await first.stop();
    // This worker commits, then waits 60 s before publishing: it is killed in that window.
    const slow = await EngineProcess.start('worker', ns, { ESCROW_FAULT_PUBLISH_DELAY_MS: '60000' });
    let next: BaseProcess | null = null;
    try {
      const answer = t.client.a('Deposit', PAYMENTS, { user_id: 'emp-ob', amount: usd('4.00'), external_reference: key() });
      // The deposit is committed (a posting exists) but its outcome is not published.
      await eventually(async () => {
        const { rows } = await t.db.query("SELECT count(*)::int AS n FROM postings WHERE kind = 'deposit'");
        expect(rows[0].n).toBe(2);
      }, 15_000);
      expect((await t.db.query('SELECT count(*)::int AS n FROM ledger_outbox')).rows[0].n).toBeGreaterThan(0);
      await slow.kill();
      next = await EngineProcess.start('worker', ns);
      const r = await answer;
      expect(r.status).toBe('APPLIED');
      await eventually(async () => expect((await t.db.query('SELECT count(*)::int AS n FROM ledger_outbox')).rows[0].n).toBe(0), 10_000);
      await ledgerCaughtUp(t.engine);
      await expectLedgerSound(t.engine);
    } finally {
      await slow.kill();
      await next?.kill();
      await t.stop();
      await dropNamespace(ns);
    }
  });
});

describe('metrics of a worker process', () => {
  it('are served on METRICS_ADDRESS and count what the ledger moved aside', async () => {
    const { freePort } = await import('../src/dev/embedded.js');
    const ns = freshNamespace();
    const t = await startEngine({ namespace: ns, worker: false });
    const port = await freePort();
    const worker = await EngineProcess.start('worker', ns, { METRICS_ADDRESS: `127.0.0.1:${port}` });
    try {
      await t.engine.log.js.publish(t.engine.log.names.account('mallory'), new TextEncoder().encode('{"forged":true}'));
      await eventually(async () => {
        const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        expect(body).toMatch(/escrow_ledger_quarantined_total\{reason="UNSIGNED"\} 1/);
        expect(body).toMatch(/process_cpu_seconds_total/);
      }, 15_000);
    } finally {
      await worker.kill();
      await t.stop();
      await dropNamespace(ns);
    }
  });
});

describe('metrics of an engine process', () => {
  it('calls by RPC and code with latencies, resident actors, mailboxes, ledger batches, cursor and lag, waits, conflicts, timers, invariant stops', async () => {
    const { freePort } = await import('../src/dev/embedded.js');
    const ns = freshNamespace();
    const port = await freePort();
    const engine = await EngineProcess.start('all', ns, { METRICS_ADDRESS: `127.0.0.1:${port}` });
    const c = new EscrowClient(engine.address);
    try {
      await deposit(c, 'emp-metrics', '10.00');
      const id = await funded(c, 'emp-metrics', 'fl-metrics', '2.00', 'p-metrics');
      await c.m('ReleaseMilestone', 'emp-metrics', { milestone_id: id, idempotency_key: key() });
      await c.m('ReleaseMilestone', 'emp-metrics', { milestone_id: id, idempotency_key: key() }).catch(() => null);
      await eventually(async () => {
        const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        expect(body).toMatch(/escrow_rpc_calls_total\{rpc="CreateMilestone",code="OK"\} 1/);
        expect(body).toMatch(/escrow_rpc_calls_total\{rpc="ReleaseMilestone",code="FAILED_PRECONDITION"\} 1/);
        expect(body).toMatch(/escrow_rpc_duration_seconds_bucket\{le="\+Inf",rpc="Deposit"\} 1/);
        expect(body).toMatch(/escrow_actors_resident\{kind="milestone"\} 1/);
        expect(body).toMatch(/escrow_mailbox_queued\{kind="milestone"\} 0/);
        expect(body).toMatch(/escrow_ledger_batch_events_count [1-9]/);
        expect(body).toMatch(/escrow_ledger_batch_seconds_count [1-9]/);
        expect(body).toMatch(/escrow_ledger_cursor [1-9]/);
        expect(body).toMatch(/escrow_ledger_lag_messages 0/);
        expect(body).toMatch(/escrow_stream_last_seq [1-9]/);
        expect(body).toMatch(/escrow_outcome_waiters 0/);
        expect(body).toMatch(/escrow_outcome_oldest_wait_seconds 0/);
        expect(body).toMatch(/escrow_sagas_stale 0/);
        for (const name of ['escrow_append_conflicts_total', 'escrow_timer_lateness_seconds', 'escrow_ledger_invariant_stops_total'])
          expect(body).toContain(`# TYPE ${name}`);
      }, 15_000);
    } finally {
      c.close();
      await engine.kill();
      await dropNamespace(ns);
    }
  });
});

describe('a stream made again under a ledger', () => {
  it('stops the worker loudly (exit 70) instead of applying a stream whose sequences started over; nothing unsigned is trusted in it', async () => {
    const ns = freshNamespace();
    const t = await startEngine({ namespace: ns });
    await deposit(t.client, 'emp-again', '5.00');
    await ledgerCaughtUp(t.engine);
    const { names } = t.engine.log;
    await t.stop();
    const nc = await (await import('@nats-io/transport-node')).connect({ servers: services().natsUrl });
    const { jetstreamManager } = await import('@nats-io/jetstream');
    await (await jetstreamManager(nc)).streams.delete(names.stream);
    await nc.close();
    const worker = await EngineProcess.start('worker', ns, { LOG_LEVEL: 'error' }).catch((err: Error) => err);
    try {
      const exited =
        worker instanceof Error
          ? worker.message
          : await new Promise<string>((resolve) => worker.child!.once('exit', (code) => resolve(`exited (${code}) ${worker.output}`)));
      expect(exited).toMatch(/\(70\)/);
      expect(exited).toMatch(/was made again/);
      const { createPool, signedSince } = await import('../src/ledger/db.js');
      const pool = createPool(services().databaseUrl, ns, 1);
      const nc2 = await (await import('@nats-io/transport-node')).connect({ servers: services().natsUrl });
      const created = (await (await jetstreamManager(nc2)).streams.info(names.stream)).created;
      expect(await signedSince(pool, { created })).toBe(1);
      await nc2.close();
      await pool.end();
    } finally {
      if (!(worker instanceof Error)) await worker.kill();
      await dropNamespace(ns);
    }
  }, 60_000);
});
