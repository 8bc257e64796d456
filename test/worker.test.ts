import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applyBatch } from '../src/ledger/apply.js';
import type { EngineProcess as BaseProcess } from '../tools/processes.js';
import { usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, eventually, freshNamespace, startEngine, type TestEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';
import { allEvents, expectLedgerSound, ledgerCaughtUp, ledgerSnapshot, reapplyWholeStream } from './helpers/ledger.js';

describe('ledger worker redelivery', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startEngine();
  });
  afterAll(async () => {
    await t.stop();
    await dropNamespace(t.namespace);
  });

  it('the same events applied again (a crash between commit and ack, a second worker) change nothing', async () => {
    const c = t.client;
    await deposit(c, 'emp', '100.00');
    const a = await funded(c, 'emp', 'fl', '30.00', 'proj');
    const b = await funded(c, 'emp', 'fl', '20.00', 'proj');
    await c.m('ReleaseMilestone', 'emp', { milestone_id: a, amount: usd('10.00'), idempotency_key: key() });
    await c.m('CancelMilestone', 'emp', { milestone_id: b, reason: 'x', idempotency_key: key() });
    await c.a('Withdraw', 'emp', { amount: usd('5.00'), external_reference: key('wd') });
    // A dispute settled by agreement: a split posted once, however often its event is applied.
    const d = await funded(c, 'emp', 'fl', '15.00', 'proj');
    await c.m('OpenDispute', 'fl', { milestone_id: d, reason: 'x', claimed_amount: usd('15.00'), idempotency_key: key() });
    await c.m('ProposeSettlement', 'emp', { milestone_id: d, freelancer_amount: usd('6.00'), idempotency_key: key() });
    await c.m('AcceptSettlement', 'fl', { milestone_id: d, idempotency_key: key() });
    await ledgerCaughtUp(t.engine);
    const before = await ledgerSnapshot(t);

    expect(await reapplyWholeStream(t)).toBeGreaterThan(8);
    expect(await ledgerSnapshot(t)).toEqual(before);
    await expectLedgerSound(t.engine);
    expect(await balance(c, 'emp')).toEqual({ available: '59.00', held: '20.00', incoming: '0.00' });
  });

  it('a second worker on the same consumer changes nothing twice', async () => {
    const second = await startEngine({ namespace: t.namespace, gateway: false });
    try {
      const c = t.client;
      await deposit(c, 'emp2', '200.00');
      const ids = await Promise.all(Array.from({ length: 20 }, () => funded(c, 'emp2', 'fl2', '10.00', 'proj2')));
      await Promise.all(
        ids.map((id, i) =>
          i % 2
            ? c.m('ReleaseMilestone', 'emp2', { milestone_id: id, idempotency_key: key() })
            : c.m('CancelMilestone', 'emp2', { milestone_id: id, idempotency_key: key() }),
        ),
      );
      await ledgerCaughtUp(t.engine);
      await expectBalance(c, 'emp2', { available: '100.00', held: '0.00', incoming: '0.00' });
      await expectBalance(c, 'fl2', { available: '100.00', held: '0.00', incoming: '0.00' });
      await expectLedgerSound(t.engine);
    } finally {
      await second.stop();
    }
  });
});

describe('a worker killed mid-batch', () => {
  let t: TestEngine;
  let worker: BaseProcess;
  beforeAll(async () => {
    const namespace = freshNamespace();
    // Only a gateway in this process; the worker is a child process we can SIGKILL.
    t = await startEngine({ namespace, worker: false, env: { ESCROW_FUNDING_WAIT_MS: '20000' } });
    worker = await EngineProcess.start('worker', namespace, { ESCROW_LEDGER_BATCH_MAX: '16' });
  });
  afterAll(async () => {
    await worker.kill();
    await t.stop();
    await dropNamespace(t.namespace);
  });

  it('is restarted and loses nothing: every money event applied once', async () => {
    const c = t.client;
    await deposit(c, 'emp', '1000.00');
    const work = (async () => {
      const ids: string[] = [];
      for (let round = 0; round < 8; round++) {
        const batch = await Promise.all(Array.from({ length: 5 }, () => funded(c, 'emp', 'fl', '10.00', 'proj')));
        ids.push(...batch);
        await Promise.all(
          batch.map((id, i) =>
            c.m(i % 2 ? 'ReleaseMilestone' : 'CancelMilestone', i % 2 ? 'emp' : 'fl', { milestone_id: id, idempotency_key: key() }),
          ),
        );
      }
      return ids;
    })();
    for (let kill = 0; kill < 3; kill++) {
      await new Promise((r) => setTimeout(r, 700));
      await worker.kill();
      await new Promise((r) => setTimeout(r, 300));
      await worker.spawn();
    }
    const ids = await work;
    expect(ids).toHaveLength(40);
    const readEngine = t.engine;
    await expectBalance(c, 'fl', { available: '160.00', held: '0.00', incoming: '0.00' }, 'USD');
    await expectBalance(c, 'emp', { available: '840.00', held: '0.00', incoming: '0.00' }, 'USD');
    await ledgerCaughtUp(readEngine);
    // Every money event of the stream has exactly one posting.
    const events = (await allEvents(t)).filter((e) => /created|released|cancelled|deposit|withdrawal|funds_reserved/.test(e.event.type));
    const { rows } = await t.db.query('SELECT event_id::text FROM postings');
    expect(rows.map((r: { event_id: string }) => r.event_id).sort()).toEqual(events.map((e) => e.event.id).sort());
    await expectLedgerSound(readEngine);
  });
});

describe('the ledger refuses to pay what escrow does not hold', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startEngine({ gateway: false });
  });
  afterAll(async () => {
    await t.stop();
    await dropNamespace(t.namespace);
  });

  /** Applying `event` alone is a broken invariant, and nothing is committed. */
  async function expectBrokenInvariant(event: object) {
    const { InvariantViolation } = await import('../src/errors.js');
    const client = await t.engine.pool.connect();
    try {
      await expect(applyBatch(client, [{ seq: 1, event: event as never }])).rejects.toBeInstanceOf(InvariantViolation);
    } finally {
      client.release();
    }
    const { rows } = await t.db.query('SELECT count(*)::int AS n FROM postings');
    expect(rows[0].n).toBe(0);
  }

  it('a debit an account actor decided beyond the balance is a broken invariant, never a refusal: nothing is committed', async () => {
    const event = {
      specversion: '1.0',
      id: '99999999-2222-8333-8444-666666666666',
      source: 'test',
      type: 'escrow.account.funds_reserved.v1',
      subject: 'poor',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: {
        by: 'poor',
        change: {
          currency: 'USD',
          amount: '10.00',
          fee: '0.00',
          milestoneId: '11111111-2222-8333-8444-777777777777',
          projectId: 'p',
          freelancerId: 'f',
        },
        state: { userId: 'poor', debited: { USD: '10.00' } },
      },
    } as const;
    await expectBrokenInvariant(event);
  });

  it('a clear of more than is pending is a broken invariant, never a refusal that leaves the payout stuck', async () => {
    const event = {
      specversion: '1.0',
      id: '99999999-2222-8333-8444-777777777777',
      source: 'test',
      type: 'escrow.account.funds_cleared.v1',
      subject: 'unpaid',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: {
        by: 'unpaid',
        change: {
          currency: 'USD',
          amount: '10.00',
          milestoneId: '11111111-2222-8333-8444-888888888888',
          causationId: '11111111-2222-8333-8444-999999999999',
        },
        state: { userId: 'unpaid', debited: {} },
      },
    } as const;
    await expectBrokenInvariant(event);
  });

  it('a release with no hold before it is a broken invariant: nothing is committed', async () => {
    const id = '11111111-2222-8333-8444-555555555555';
    const state = {
      id,
      state: 'released',
      version: 3,
      applied: {},
      history: [],
      context: {
        employerId: 'e',
        freelancerId: 'f',
        currency: 'USD',
        amount: '10.00',
        held: '0.00',
        released: '10.00',
        returned: '0.00',
        projectId: 'p',
        description: '',
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
      },
    };
    const event = {
      specversion: '1.0',
      id: '99999999-2222-8333-8444-555555555555',
      source: 'test',
      type: 'escrow.milestone.released.v1',
      subject: id,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: { by: 'e', version: 3, change: { amount: '10.00', held: '0.00', fee: '0.00' }, state },
    } as const;
    await expectBrokenInvariant(event);
  });
});

describe('a consumer that skips a message', () => {
  it('is never followed past it: the worker starts over from its cursor, and every event is applied once', async () => {
    // What a replica behind its leader, or a consumer recreated from the wrong place, would
    // deliver: the stream without one of its messages (a reservation). Sequences have no gaps
    // (the consumer takes every subject), so the worker sees the hole.
    const t = await startEngine({ worker: false });
    const { LedgerWorker } = await import('../src/ledger/worker.js');
    const { createPool } = await import('../src/ledger/db.js');
    const { createLogger } = await import('../src/log.js');
    const log = t.engine.log;
    let dropped = 0;
    const bound = (target: object, p: string | symbol) => {
      const v = Reflect.get(target, p, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    };
    type Consume = (o: { callback: (m: { seq: number; subject: string }) => void }) => Promise<unknown>;
    const skipping = {
      consumers: {
        get: async (...a: Parameters<typeof log.js.consumers.get>) => {
          const consumer = await log.js.consumers.get(...a);
          return new Proxy(consumer, {
            get: (target, p) =>
              p === 'consume'
                ? (o: Parameters<Consume>[0]) =>
                    (target.consume as unknown as Consume)({
                      ...o,
                      callback: (m) => (dropped === 0 && m.seq > 2 && m.subject.includes('.account.') ? (dropped = m.seq) : o.callback(m)),
                    })
                : bound(target, p),
          });
        },
      },
    };
    const skippingLog = new Proxy(log, { get: (target, p) => (p === 'js' ? skipping : bound(target, p)) });
    const pool = createPool(inject('databaseUrl'), t.namespace, 2);
    const worker = new LedgerWorker({
      log: skippingLog,
      pool,
      logger: createLogger('silent'),
      batchMax: 64,
      standbyPollMs: 100,
      onFatal: (err) => {
        throw err;
      },
    });
    await worker.start();
    try {
      await deposit(t.client, 'emp-skip', '100.00');
      const ids = await Promise.all(Array.from({ length: 5 }, () => funded(t.client, 'emp-skip', 'fl-skip', '10.00', 'proj-skip')));
      await t.client.m('ReleaseMilestone', 'emp-skip', { milestone_id: ids[0], idempotency_key: key() });
      await ledgerCaughtUp(t.engine);
      expect(dropped).toBeGreaterThan(2);
      await expectBalance(t.client, 'emp-skip', { available: '50.00', held: '40.00', incoming: '0.00' });
      await expectBalance(t.client, 'fl-skip', { available: '10.00', held: '0.00', incoming: '40.00' });
      expect((await t.db.query('SELECT count(*)::int AS n FROM ledger_quarantine')).rows[0].n).toBe(0);
      await expectLedgerSound(t.engine);
    } finally {
      await worker.stop();
      await pool.end();
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});

describe('a log that lost what the ledger posted', () => {
  it('stops the worker (a broken invariant) instead of following a stream whose tail changed', async () => {
    // What a replicated stream that lost or rewrote its tail looks like to the ledger: the
    // message it posted last is gone from its sequence (here deleted, as a stand-in).
    const t = await startEngine();
    const { LedgerWorker } = await import('../src/ledger/worker.js');
    const { createPool } = await import('../src/ledger/db.js');
    const { createLogger } = await import('../src/log.js');
    const pool = createPool(inject('databaseUrl'), t.namespace, 2);
    try {
      await deposit(t.client, 'emp-tail', '50.00');
      await funded(t.client, 'emp-tail', 'fl-tail', '10.00', 'proj-tail');
      await ledgerCaughtUp(t.engine);
      const last = (await t.db.query('SELECT stream_seq::int AS seq FROM postings ORDER BY stream_seq DESC LIMIT 1')).rows[0].seq as number;
      await t.engine.worker!.stop();
      await t.engine.log.jsm.streams.deleteMessage(t.engine.log.names.stream, last);
      let fatal: Error | null = null;
      const worker = new LedgerWorker({
        log: t.engine.log,
        pool,
        logger: createLogger('silent'),
        batchMax: 64,
        standbyPollMs: 100,
        onFatal: (err) => (fatal = err),
      });
      await worker.start();
      await eventually(async () => expect(fatal).not.toBeNull(), 10_000);
      expect(String(fatal)).toMatch(new RegExp(`no longer holds event .* at sequence ${last}`));
      await worker.stop();
    } finally {
      await pool.end();
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});
