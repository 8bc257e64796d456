import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineProcess as BaseProcess } from '../tools/processes.js';
import { EscrowClient, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, eventually, freshNamespace, startEngine, type TestEngine } from './helpers/engine.js';
import { deposit, key } from './helpers/flows.js';
import { allEvents, expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';
import type { Reply } from '../src/client.js';

/**
 * Durable timers against real processes: dispute deadlines and auto-release, with windows of
 * seconds (configuration), fired once across a SIGKILL and with several processes scanning.
 */
const TIMER_ENV = { ESCROW_DISPUTE_RESPONSE_EMPLOYER: '3s', ESCROW_TIMER_SCAN_MS: '100' };
const systemEvents = (m: Reply) => m.history.filter((h: Reply) => h.actor_id === 'system' && ['resolved', 'released'].includes(h.type));

describe('durable timers', () => {
  const namespace = freshNamespace();
  let observer: TestEngine;
  const started: BaseProcess[] = [];
  const start = async (role: 'gateway' | 'worker' | 'all', extra: Record<string, string> = {}) => {
    const p = await EngineProcess.start(role, namespace, { ...TIMER_ENV, ...extra });
    started.push(p);
    return p;
  };
  beforeAll(async () => {
    // In-process, neither gateway nor worker: only the log and the database, for the audit.
    observer = await startEngine({ namespace, gateway: false, worker: false });
  });
  afterAll(async () => {
    for (const p of started) await p.kill().catch(() => {});
    await observer.stop();
    await dropNamespace(namespace);
  });

  it('a deadline that passes while every process is down fires once after the restart', async () => {
    const a = await start('all');
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t1', '10.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t1', {
        project_id: 'proj-t1',
        freelancer_id: 'fl-t1',
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    const opened = await c.m('OpenDispute', 'fl-t1', {
      milestone_id: m.id,
      reason: 'unpaid',
      claimed_amount: usd('7.00'),
      idempotency_key: key(),
    });
    expect(opened.milestone.status).toBe('DISPUTED');
    await ledgerCaughtUp(observer.engine);
    c.close();
    await a.kill();
    await new Promise((r) => setTimeout(r, 3_500));

    const b = await start('all');
    const c2 = new EscrowClient(b.address);
    try {
      const resolved = await eventually(async () => {
        const got = (await c2.m('GetMilestone', 'fl-t1', { milestone_id: m.id })).milestone;
        expect(got).toMatchObject({
          status: 'RESOLVED',
          released: usd('7.00'),
          returned: usd('3.00'),
          dispute: { outcome: 'claim_granted' },
        });
        return got;
      });
      await new Promise((r) => setTimeout(r, 500));
      const later = (await c2.m('GetMilestone', 'fl-t1', { milestone_id: m.id })).milestone;
      expect(later.version).toBe(resolved.version);
      expect(systemEvents(later)).toHaveLength(1);
    } finally {
      c2.close();
      await b.kill();
    }
  });

  it('an auto-release window that passes while every process is down releases once after the restart', async () => {
    const a = await start('all');
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t3', '10.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t3', {
        project_id: 'proj-t3',
        freelancer_id: 'fl-t3',
        amount: usd('10.00'),
        review_window_seconds: 2,
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('RequestRelease', 'fl-t3', { milestone_id: m.id, idempotency_key: key() });
    await ledgerCaughtUp(observer.engine);
    c.close();
    await a.kill();
    await new Promise((r) => setTimeout(r, 2_500));

    const b = await start('all');
    const c2 = new EscrowClient(b.address);
    try {
      await eventually(async () => {
        const got = (await c2.m('GetMilestone', 'fl-t3', { milestone_id: m.id })).milestone;
        expect(got).toMatchObject({ status: 'RELEASED', released: usd('10.00') });
      });
      await new Promise((r) => setTimeout(r, 500));
      const later = (await c2.m('GetMilestone', 'fl-t3', { milestone_id: m.id })).milestone;
      expect(systemEvents(later)).toHaveLength(1);
    } finally {
      c2.close();
      await b.kill();
    }
  });

  it('a review window frozen across a SIGKILL does not fire; unfrozen, it fires once with the time it had left, across another', async () => {
    const support = { id: 'support-t5', roles: ['support'] };
    const a = await start('all');
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t5', '10.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t5', {
        project_id: 'proj-t5',
        freelancer_id: 'fl-t5',
        amount: usd('10.00'),
        review_window_seconds: 3,
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('RequestRelease', 'fl-t5', { milestone_id: m.id, idempotency_key: key() });
    await c.m('FreezeMilestone', support, { milestone_id: m.id, reason: 'fraud check', idempotency_key: key() });
    await ledgerCaughtUp(observer.engine);
    c.close();
    await a.kill();
    await new Promise((r) => setTimeout(r, 3_500));

    const b = await start('all');
    const c2 = new EscrowClient(b.address);
    try {
      // Well past the window: still frozen, nothing released.
      await new Promise((r) => setTimeout(r, 500));
      expect((await c2.m('GetMilestone', 'fl-t5', { milestone_id: m.id })).milestone).toMatchObject({
        status: 'FROZEN',
        held: usd('10.00'),
      });
      const back = await c2.m('UnfreezeMilestone', support, { milestone_id: m.id, reason: 'ok', idempotency_key: key() });
      expect(back.milestone.status).toBe('RELEASE_REQUESTED');
      await ledgerCaughtUp(observer.engine);
    } finally {
      c2.close();
      await b.kill();
    }
    await new Promise((r) => setTimeout(r, 3_500));
    const d = await start('all');
    const c3 = new EscrowClient(d.address);
    try {
      await eventually(async () => {
        const got = (await c3.m('GetMilestone', 'fl-t5', { milestone_id: m.id })).milestone;
        expect(got).toMatchObject({ status: 'RELEASED', released: usd('10.00') });
      });
      await new Promise((r) => setTimeout(r, 500));
      expect(systemEvents((await c3.m('GetMilestone', 'fl-t5', { milestone_id: m.id })).milestone)).toHaveLength(1);
    } finally {
      c3.close();
      await d.kill();
    }
  });

  it('a payout whose clearing time passes while every process is down clears once after the restart', async () => {
    const a = await start('all', { ESCROW_CLEARING_PERIOD: '2s' });
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t6', '10.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t6', {
        project_id: 'proj-t6',
        freelancer_id: 'fl-t6',
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('ReleaseMilestone', 'emp-t6', { milestone_id: m.id, idempotency_key: key() });
    await ledgerCaughtUp(observer.engine);
    const pending = await c.a('GetBalance', 'fl-t6', { user_id: 'fl-t6', currency_code: 'USD' });
    expect({ available: pending.available.amount, pending: pending.pending.amount }).toEqual({ available: '0.00', pending: '10.00' });
    c.close();
    await a.kill();
    await new Promise((r) => setTimeout(r, 2_500));
    const b = await start('all', { ESCROW_CLEARING_PERIOD: '2s' });
    const c2 = new EscrowClient(b.address);
    try {
      await eventually(async () => {
        const got = await c2.a('GetBalance', 'fl-t6', { user_id: 'fl-t6', currency_code: 'USD' });
        expect({ available: got.available.amount, pending: got.pending.amount }).toEqual({ available: '10.00', pending: '0.00' });
      });
      const entries = (await c2.a('ListLedgerEntries', 'fl-t6', { user_id: 'fl-t6' })).entries as Reply[];
      expect(entries.filter((e) => e.kind === 'clear')).toHaveLength(2);
      await expectLedgerSound(observer.engine);
    } finally {
      c2.close();
      await b.kill();
    }
  });

  it('an escalation left waiting for its fee by a killed gateway is finished by another process', async () => {
    const fees = {
      ESCROW_FEES: JSON.stringify({ USD: { arbitration: '2.00' } }),
      ESCROW_DISPUTE_NEGOTIATION: '1ms',
      ESCROW_FUNDING_WAIT_MS: '300',
    };
    // This gateway is killed after the escalation's event and before it decides the fee.
    const gw = await start('gateway', { ...fees, ESCROW_FAULT_FEE_DECISION_DELAY_MS: '60000' });
    await start('worker', fees);
    const c = new EscrowClient(gw.address);
    await deposit(c, 'emp-t4', '10.00');
    await deposit(c, 'fl-t4', '2.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t4', {
        project_id: 'proj-t4',
        freelancer_id: 'fl-t4',
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('OpenDispute', 'fl-t4', { milestone_id: m.id, reason: 'unpaid', claimed_amount: usd('10.00'), idempotency_key: key() });
    await c.m('ProposeSettlement', 'emp-t4', { milestone_id: m.id, freelancer_amount: usd('1.00'), idempotency_key: key() });
    void c.m('EscalateDispute', 'fl-t4', { milestone_id: m.id, idempotency_key: key() }).catch(() => {});
    await eventually(async () => {
      const got = (await observer.db.query(`SELECT dispute_stage FROM milestones WHERE milestone_id = $1`, [m.id])).rows[0];
      expect(got?.dispute_stage).toBe('ESCALATING');
    }, 10_000);
    c.close();
    await gw.kill();
    // Nobody waits for it now: the sweep of the worker (or any process) decides the fee through the account actor and moves the milestone on.
    const gw2 = await start('gateway', { ...fees, ESCROW_TIMER_SCAN_MS: '3600000' });
    const c2 = new EscrowClient(gw2.address);
    try {
      await eventually(async () => {
        const got = (await observer.db.query(`SELECT dispute_stage FROM milestones WHERE milestone_id = $1`, [m.id])).rows[0];
        expect(got?.dispute_stage).toBe('ARBITRATION');
      }, 20_000);
      const got = (await c2.m('GetMilestone', 'fl-t4', { milestone_id: m.id })).milestone;
      expect(got.dispute).toMatchObject({ stage: 'ARBITRATION', escalated_by: 'fl-t4', arbitration_fee: usd('2.00') });
      expect(got.history.filter((h: Reply) => h.type === 'escalated')).toHaveLength(1);
      const b = await c2.a('GetBalance', 'fl-t4', { user_id: 'fl-t4', currency_code: 'USD' });
      expect(b).toMatchObject({ available: usd('0.00'), held: usd('2.00') });
    } finally {
      c2.close();
    }
  });

  it('an arbitration fee deadline that passes while every process is down decides the dispute once, by default', async () => {
    const both = {
      ESCROW_FEES: JSON.stringify({ USD: { arbitration: '2.00' } }),
      ESCROW_DISPUTE_NEGOTIATION: '1ms',
      ESCROW_ARBITRATION_FEE_DEADLINE: '2s',
    };
    const a = await start('all', both);
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t7', '10.00');
    await deposit(c, 'fl-t7', '2.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t7', {
        project_id: 'proj-t7',
        freelancer_id: 'fl-t7',
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('OpenDispute', 'fl-t7', { milestone_id: m.id, reason: 'unpaid', claimed_amount: usd('8.00'), idempotency_key: key() });
    await c.m('ProposeSettlement', 'emp-t7', { milestone_id: m.id, freelancer_amount: usd('1.00'), idempotency_key: key() });
    const escalated = await c.m('EscalateDispute', 'fl-t7', { milestone_id: m.id, idempotency_key: key() });
    expect(escalated.milestone.dispute).toMatchObject({ stage: 'AWAITING_FEE', fee_due_from: 'emp-t7' });
    await ledgerCaughtUp(observer.engine);
    c.close();
    await a.kill();
    await new Promise((r) => setTimeout(r, 2_500));
    const b = await start('all', both);
    const c2 = new EscrowClient(b.address);
    try {
      await eventually(async () => {
        const got = (await c2.m('GetMilestone', 'fl-t7', { milestone_id: m.id })).milestone;
        expect(got).toMatchObject({ status: 'RESOLVED', released: usd('8.00'), returned: usd('2.00'), dispute: { outcome: 'fee_unpaid' } });
      });
      await new Promise((r) => setTimeout(r, 500));
      expect(systemEvents((await c2.m('GetMilestone', 'fl-t7', { milestone_id: m.id })).milestone)).toHaveLength(1);
      // The freelancer won by default: its claim of 8.00 and its fee of 2.00 back.
      await eventually(async () =>
        expect(await c2.a('GetBalance', 'fl-t7', { user_id: 'fl-t7', currency_code: 'USD' })).toMatchObject({
          available: usd('10.00'),
          held: usd('0.00'),
        }),
      );
      await ledgerCaughtUp(observer.engine);
      await expectLedgerSound(observer.engine);
    } finally {
      c2.close();
      await b.kill();
    }
  });

  it("the other party's fee left waiting by a killed gateway is finished by another process", async () => {
    const both = {
      ESCROW_FEES: JSON.stringify({ USD: { arbitration: '2.00' } }),
      ESCROW_DISPUTE_NEGOTIATION: '1ms',
      ESCROW_ARBITRATION_FEE_DEADLINE: '1h',
      ESCROW_FUNDING_WAIT_MS: '300',
    };
    const gw = await start('gateway', both);
    await start('worker', both);
    // This gateway is killed after the second fee's event and before it decides the fee.
    const slow = await start('gateway', { ...both, ESCROW_FAULT_FEE_DECISION_DELAY_MS: '60000' });
    const c = new EscrowClient(gw.address);
    const cs = new EscrowClient(slow.address);
    await deposit(c, 'emp-t8', '12.00');
    await deposit(c, 'fl-t8', '2.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t8', {
        project_id: 'proj-t8',
        freelancer_id: 'fl-t8',
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('OpenDispute', 'fl-t8', { milestone_id: m.id, reason: 'unpaid', claimed_amount: usd('10.00'), idempotency_key: key() });
    await c.m('ProposeSettlement', 'emp-t8', { milestone_id: m.id, freelancer_amount: usd('1.00'), idempotency_key: key() });
    await c.m('EscalateDispute', 'fl-t8', { milestone_id: m.id, idempotency_key: key() });
    await ledgerCaughtUp(observer.engine);
    void cs.m('PayArbitrationFee', 'emp-t8', { milestone_id: m.id, idempotency_key: key() }).catch(() => {});
    await eventually(async () => {
      const got = (await observer.db.query(`SELECT dispute_stage FROM milestones WHERE milestone_id = $1`, [m.id])).rows[0];
      expect(got?.dispute_stage).toBe('ESCALATING');
    }, 10_000);
    cs.close();
    await slow.kill();
    try {
      await eventually(async () => {
        const got = (await observer.db.query(`SELECT dispute_stage FROM milestones WHERE milestone_id = $1`, [m.id])).rows[0];
        expect(got?.dispute_stage).toBe('ARBITRATION');
      }, 20_000);
      const got = (await c.m('GetMilestone', 'emp-t8', { milestone_id: m.id })).milestone;
      expect(got.dispute).toMatchObject({ stage: 'ARBITRATION', second_fee_paid_by: 'emp-t8', second_arbitration_fee: usd('2.00') });
      expect(got.history.filter((h: Reply) => h.type === 'escalated')).toHaveLength(1);
      await eventually(async () =>
        expect(await c.a('GetBalance', 'emp-t8', { user_id: 'emp-t8', currency_code: 'USD' })).toMatchObject({
          available: usd('0.00'),
          held: usd('12.00'),
        }),
      );
      await ledgerCaughtUp(observer.engine);
      await expectLedgerSound(observer.engine);
    } finally {
      c.close();
    }
  });

  it('a review window resumed by a withdrawn dispute fires once across a SIGKILL, with the time it had left', async () => {
    const a = await start('all');
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t9', '10.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t9', {
        project_id: 'proj-t9',
        freelancer_id: 'fl-t9',
        amount: usd('10.00'),
        review_window_seconds: 3,
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('RequestRelease', 'fl-t9', { milestone_id: m.id, idempotency_key: key() });
    await c.m('OpenDispute', 'emp-t9', { milestone_id: m.id, reason: 'wrong', claimed_amount: usd('10.00'), idempotency_key: key() });
    const withdrawn = (await c.m('WithdrawDispute', 'emp-t9', { milestone_id: m.id, idempotency_key: key() })).milestone;
    expect(withdrawn).toMatchObject({ status: 'RELEASE_REQUESTED', dispute: { stage: 'WITHDRAWN' } });
    expect(withdrawn.auto_release_at).toBeTruthy();
    await ledgerCaughtUp(observer.engine);
    c.close();
    await a.kill();
    await new Promise((r) => setTimeout(r, 3_500));
    const b = await start('all');
    const c2 = new EscrowClient(b.address);
    try {
      await eventually(async () => {
        const got = (await c2.m('GetMilestone', 'fl-t9', { milestone_id: m.id })).milestone;
        expect(got).toMatchObject({ status: 'RELEASED', released: usd('10.00') });
      });
      await new Promise((r) => setTimeout(r, 500));
      const later = (await c2.m('GetMilestone', 'fl-t9', { milestone_id: m.id })).milestone;
      expect(systemEvents(later)).toHaveLength(1);
      expect(later.history.at(-1)).toMatchObject({ type: 'released', actor_id: 'system', outcome: 'automatic' });
    } finally {
      c2.close();
      await b.kill();
    }
  });

  it('a clear appended while no worker runs is posted once when one starts', async () => {
    // Workers the tests before left running would post it at once.
    for (const p of started) await p.kill().catch(() => {});
    const clearing = { ESCROW_CLEARING_PERIOD: '1s' };
    const a = await start('all', clearing);
    const c = new EscrowClient(a.address);
    await deposit(c, 'emp-t10', '10.00');
    const m = (
      await c.m('CreateMilestone', 'emp-t10', {
        project_id: 'proj-t10',
        freelancer_id: 'fl-t10',
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await c.m('ReleaseMilestone', 'emp-t10', { milestone_id: m.id, idempotency_key: key() });
    await ledgerCaughtUp(observer.engine);
    c.close();
    await a.kill();
    // A gateway alone: its timer scan has the account actor append the clear, which nobody posts yet.
    const gw = await start('gateway', clearing);
    const clears = async () =>
      (await allEvents(observer)).filter((e) => e.event.type === 'escrow.account.funds_cleared.v1' && e.event.subject === 'fl-t10');
    const flBalance = async () => {
      const r = (await observer.db.query(`SELECT available::text, pending::text FROM user_balances WHERE user_id = 'fl-t10'`)).rows[0];
      return { available: Number(r?.available), pending: Number(r?.pending) };
    };
    await eventually(async () => expect(await clears()).toHaveLength(1), 10_000);
    expect(await flBalance()).toEqual({ available: 0, pending: 10 });
    await gw.kill();
    const w = await start('worker', clearing);
    try {
      await eventually(async () => {
        expect(await flBalance()).toEqual({ available: 10, pending: 0 });
      });
      expect(await clears()).toHaveLength(1);
      await ledgerCaughtUp(observer.engine);
      await expectLedgerSound(observer.engine);
    } finally {
      await w.kill();
    }
  });

  it('two workers and a gateway scanning the same timers fire each once; answered ones never fire', async () => {
    // The gateway does not scan; the two workers do, every 100 ms.
    const gw = await start('gateway', { ESCROW_TIMER_SCAN_MS: '3600000' });
    await start('worker');
    await start('worker');
    const c = new EscrowClient(gw.address);
    try {
      await deposit(c, 'emp-t2', '100.00');
      const create = async (extra: object = {}) =>
        (
          await c.m('CreateMilestone', 'emp-t2', {
            project_id: 'proj-t2',
            freelancer_id: 'fl-t2',
            amount: usd('5.00'),
            idempotency_key: key(),
            ...extra,
          })
        ).milestone.id as string;
      const disputed: string[] = [];
      const autoReleased: string[] = [];
      const answered: string[] = [];
      for (let i = 0; i < 6; i++) {
        const d = await create();
        await c.m('OpenDispute', 'fl-t2', { milestone_id: d, reason: 'unpaid', claimed_amount: usd('5.00'), idempotency_key: key() });
        disputed.push(d);
        const r = await create({ review_window_seconds: 2 });
        await c.m('RequestRelease', 'fl-t2', { milestone_id: r, idempotency_key: key() });
        autoReleased.push(r);
        const a = await create({ review_window_seconds: 2 });
        await c.m('RequestRelease', 'fl-t2', { milestone_id: a, idempotency_key: key() });
        await c.m('ReleaseMilestone', 'emp-t2', { milestone_id: a, amount: usd('1.00'), idempotency_key: key() });
        await c.m('OpenDispute', 'emp-t2', { milestone_id: a, reason: 'wrong', claimed_amount: usd('4.00'), idempotency_key: key() });
        await c.m('ProposeSettlement', 'fl-t2', { milestone_id: a, freelancer_amount: usd('2.00'), idempotency_key: key() });
        answered.push(a);
      }
      await eventually(async () => {
        for (const id of [...disputed, ...autoReleased]) {
          const got = (await c.m('GetMilestone', 'emp-t2', { milestone_id: id })).milestone;
          expect(['RESOLVED', 'RELEASED']).toContain(got.status);
        }
      }, 20_000);
      await new Promise((r) => setTimeout(r, 1_000));
      for (const id of [...disputed, ...autoReleased]) {
        const got = (await c.m('GetMilestone', 'emp-t2', { milestone_id: id })).milestone;
        expect(systemEvents(got)).toHaveLength(1);
        expect(got.held).toEqual(usd('0.00'));
      }
      for (const id of answered) {
        const got = (await c.m('GetMilestone', 'emp-t2', { milestone_id: id })).milestone;
        expect(got).toMatchObject({ status: 'DISPUTED', held: usd('4.00') });
        expect(systemEvents(got)).toHaveLength(0);
      }
      await ledgerCaughtUp(observer.engine);
      await expectLedgerSound(observer.engine);
    } finally {
      c.close();
    }
  });
});
