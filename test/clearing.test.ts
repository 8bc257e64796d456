import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, TestClock, useEngine } from './helpers/engine.js';
import { deposit, key } from './helpers/flows.js';
import { allEvents, expectLedgerSound, ledgerCaughtUp, ledgerSnapshot, reapplyWholeStream } from './helpers/ledger.js';
import type { Reply } from '../src/client.js';
import { Funds } from '../src/app/funds.js';

/** ESCROW_CLEARING_PERIOD through the gRPC API: payouts wait in pending, are not withdrawable, and clear once at their time. */
const DAY = 86_400_000;
const clock = new TestClock();
const FEES = { USD: { employer: { percent: '0', minimum: '0' }, freelancer: { percent: '10', minimum: '0' }, arbitration: '2.00' } };
const t = useEngine({
  now: clock.now,
  env: { ESCROW_CLEARING_PERIOD: '7d', ESCROW_FEES: JSON.stringify(FEES), ESCROW_TIMER_SCAN_MS: '3600000' },
});
const ARBITER = { id: 'arb-c', roles: ['arbiter'] };

const cmd = (method: string, who: string | object, id: string, fields: object = {}) =>
  t.client.m(method, who as never, { milestone_id: id, idempotency_key: key(), ...fields });

async function balance(user: string) {
  const b = await t.client.a('GetBalance', user, { user_id: user, currency_code: 'USD' });
  return {
    available: b.available.amount,
    held: b.held.amount,
    incoming: b.incoming.amount,
    pending: b.pending.amount,
    next: b.next_clearing_at,
  };
}

async function create(emp: string, fl: string, project: string, amount: string) {
  return (await t.client.m('CreateMilestone', emp, { project_id: project, freelancer_id: fl, amount: usd(amount), idempotency_key: key() }))
    .milestone;
}

describe('clearing', () => {
  it('a release is pending until it clears: not withdrawable, then cleared once, then withdrawable', async () => {
    const [emp, fl] = ['emp-c1', 'fl-c1'];
    await deposit(t.client, emp, '100.00');
    const m = await create(emp, fl, 'proj-c1', '100.00');
    const released = await cmd('ReleaseMilestone', emp, m.id, { amount: usd('40.00') });
    expect(released.milestone.status).toBe('FUNDED');
    await ledgerCaughtUp(t.engine);
    const before = await balance(fl);
    expect(before).toMatchObject({ available: '0.00', incoming: '60.00', pending: '36.00' });
    const releasedAt = Number(released.milestone.history.at(-1).at.seconds) * 1000;
    expect(Math.abs(Number(before.next.seconds) * 1000 - (releasedAt + 7 * DAY))).toBeLessThan(1000);
    expect(await failure(t.client.a('Withdraw', fl, { amount: usd('1.00'), external_reference: key('w') }))).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      reason: 'INSUFFICIENT_FUNDS',
    });
    const entries = (await t.client.a('ListLedgerEntries', fl, { user_id: fl })).entries as Reply[];
    expect(entries[0]).toMatchObject({ kind: 'release', amount: usd('36.00'), pending: true, fee: usd('4.00') });
    expect(entries[0].clears_at).toBeTruthy();
    // Not yet.
    clock.advance(7 * DAY - 60_000);
    expect(await t.engine.milestones!.clearDue()).toBe(0);
    clock.advance(120_000);
    // Two processes' account actors clearing the same payout at once decide one clear; then the sweep finds nothing left.
    const due = (await t.db.query(`SELECT event_id::text, milestone_id::text, amount::text FROM clearings WHERE user_id = $1`, [fl]))
      .rows[0];
    const other = new Funds({ log: t.engine.log, pool: t.engine.pool, mailboxMax: 100, actorsMax: 100, actorIdleMs: 60_000 });
    const clear = {
      causationId: due.event_id,
      milestoneId: due.milestone_id,
      currency: 'USD',
      amount: due.amount,
      time: clock.now().toISOString(),
    };
    try {
      await Promise.all([t.engine.milestones!.funds.clear(fl, clear), other.clear(fl, clear), t.engine.milestones!.clearDue()]);
    } finally {
      other.close();
    }
    await eventually(async () => {
      await ledgerCaughtUp(t.engine);
      expect(await balance(fl)).toMatchObject({ available: '36.00', pending: '0.00', next: null });
    });
    expect(await t.engine.milestones!.clearDue()).toBe(0);
    const after = (await t.client.a('ListLedgerEntries', fl, { user_id: fl })).entries as Reply[];
    const clears = (await allEvents(t)).filter((e) => e.event.type === 'escrow.account.funds_cleared.v1' && e.event.subject === fl);
    expect(clears).toHaveLength(1);
    expect(after.filter((e) => e.kind === 'clear')).toHaveLength(2);
    expect(after.filter((e) => e.kind === 'clear').map((e) => [e.amount.amount, e.pending])).toEqual(
      expect.arrayContaining([
        ['36.00', false],
        ['-36.00', true],
      ]),
    );
    // In pages of one, each entry once: a clear's two entries share a stream sequence.
    const walked: Reply[] = [];
    let token = '';
    do {
      const page = await t.client.a('ListLedgerEntries', fl, { user_id: fl, page_size: 1, page_token: token });
      walked.push(...page.entries);
      token = page.next_page_token;
    } while (token);
    expect(walked.map((e) => [e.kind, e.amount.amount, e.pending])).toEqual([
      ['clear', '36.00', false],
      ['clear', '-36.00', true],
      ['release', '36.00', true],
    ]);
    const w = await t.client.a('Withdraw', fl, { amount: usd('36.00'), external_reference: key('w') });
    expect(w.status).toBe('APPLIED');
    await ledgerCaughtUp(t.engine);
    expect(await balance(fl)).toMatchObject({ available: '0.00', pending: '0.00', incoming: '60.00' });
  });

  it("a dispute's share and an auto-release wait too; each payout clears on its own time", async () => {
    const [emp, fl] = ['emp-c2', 'fl-c2'];
    await deposit(t.client, emp, '30.00');
    const a = await create(emp, fl, 'proj-c2', '10.00');
    await cmd('OpenDispute', fl, a.id, { reason: 'unpaid', claimed_amount: usd('10.00') });
    await cmd('AcceptClaim', emp, a.id);
    clock.advance(DAY);
    const b = (
      await t.client.m('CreateMilestone', emp, {
        project_id: 'proj-c2',
        freelancer_id: fl,
        amount: usd('20.00'),
        review_window_seconds: 3600,
        idempotency_key: key(),
      })
    ).milestone;
    await cmd('RequestRelease', fl, b.id);
    await ledgerCaughtUp(t.engine);
    clock.advance(2 * 3_600_000);
    await eventually(async () => {
      await t.engine.milestones!.fireDueTimers();
      expect((await t.client.m('GetMilestone', emp, { milestone_id: b.id })).milestone.status).toBe('RELEASED');
    });
    await ledgerCaughtUp(t.engine);
    expect(await balance(fl)).toMatchObject({ available: '0.00', pending: '27.00' });
    // Six days after the first: only the first clears.
    clock.advance(6 * DAY - 2 * 3_600_000 + 60_000);
    await t.engine.milestones!.clearDue();
    await eventually(async () => {
      await ledgerCaughtUp(t.engine);
      expect(await balance(fl)).toMatchObject({ available: '9.00', pending: '18.00' });
    });
    // The auto-release was a day and two hours after the first payout.
    clock.advance(DAY + 2 * 3_600_000);
    await t.engine.milestones!.clearDue();
    await eventually(async () => {
      await ledgerCaughtUp(t.engine);
      expect(await balance(fl)).toMatchObject({ available: '27.00', pending: '0.00' });
    });
  });

  it('an arbitrated share of nothing leaves nothing pending', async () => {
    const [emp, fl] = ['emp-c3', 'fl-c3'];
    await deposit(t.client, emp, '12.00');
    const m = await create(emp, fl, 'proj-c3', '10.00');
    await cmd('OpenDispute', emp, m.id, { reason: 'nothing delivered', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', fl, m.id, { freelancer_amount: usd('5.00') });
    clock.advance(3 * DAY + 1000);
    await cmd('EscalateDispute', emp, m.id);
    await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('0') });
    await ledgerCaughtUp(t.engine);
    expect(await balance(fl)).toMatchObject({ available: '0.00', pending: '0.00', next: null });
    // The employer won: the 10.00 back and its arbitration fee.
    expect(await balance(emp)).toMatchObject({ available: '12.00', held: '0.00' });
  });

  it("an arbitrated share is pending while the winner's arbitration fee comes back to available at once", async () => {
    const [emp, fl] = ['emp-c4', 'fl-c4'];
    await deposit(t.client, emp, '10.00');
    await deposit(t.client, fl, '2.00');
    const m = await create(emp, fl, 'proj-c4', '10.00');
    await cmd('OpenDispute', fl, m.id, { reason: 'unpaid', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', emp, m.id, { freelancer_amount: usd('1.00') });
    clock.advance(3 * DAY + 1000);
    await cmd('EscalateDispute', fl, m.id);
    const resolved = (await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('10.00') })).milestone;
    expect(resolved.history.at(-1)).toMatchObject({ arbitration_fee_refunded: true });
    await ledgerCaughtUp(t.engine);
    // The fee was the freelancer's own money: available. The share, less the 10% fee, waits a week.
    expect(await balance(fl)).toMatchObject({ available: '2.00', held: '0.00', pending: '9.00' });
    expect(await failure(t.client.a('Withdraw', fl, { amount: usd('2.01'), external_reference: key('w') }))).toMatchObject({
      reason: 'INSUFFICIENT_FUNDS',
    });
    expect((await t.client.a('Withdraw', fl, { amount: usd('2.00'), external_reference: key('w') })).status).toBe('APPLIED');
    clock.advance(7 * DAY);
    await t.engine.milestones!.clearDue();
    await eventually(async () => {
      await ledgerCaughtUp(t.engine);
      expect(await balance(fl)).toMatchObject({ available: '9.00', pending: '0.00' });
    });
  });

  it('the ledger is sound, and applying every event again (payouts to pending, clears) changes nothing', async () => {
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
    const before = await ledgerSnapshot(t);
    expect(before.postings.map((p: { kind: string }) => p.kind)).toEqual(expect.arrayContaining(['release', 'settle', 'clear']));
    await reapplyWholeStream(t);
    expect(await ledgerSnapshot(t)).toEqual(before);
    await expectLedgerSound(t.engine);
  });
});
