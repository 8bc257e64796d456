import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, PAYMENTS, usd } from './helpers/client.js';
import { eventually, TestClock, useEngine } from './helpers/engine.js';
import { deposit, expectBalance, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp, ledgerSnapshot, reapplyWholeStream } from './helpers/ledger.js';
import type { Reply } from '../src/client.js';

const DAY = 86_400_000;
const FEES = { USD: { employer: { percent: '2', minimum: '0.50' }, freelancer: { percent: '10', minimum: '1.00' }, arbitration: '5.00' } };
const clock = new TestClock();
// Timers are looked for by hand (fireDueTimers) in these tests: the scan interval is long.
const t = useEngine({ now: clock.now, env: { ESCROW_FEES: JSON.stringify(FEES), ESCROW_TIMER_SCAN_MS: '3600000' } });
const ARBITER = { id: 'arb-1', roles: ['arbiter'] };

let n = 0;
function parties() {
  n++;
  return { emp: `emp-d${n}`, fl: `fl-d${n}`, project: `proj-d${n}` };
}

async function fundedMilestone(p: ReturnType<typeof parties>, amount: string, extra: object = {}) {
  const r = await t.client.m('CreateMilestone', p.emp, {
    project_id: p.project,
    freelancer_id: p.fl,
    amount: usd(amount),
    idempotency_key: key(),
    ...extra,
  });
  expect(r.milestone.status).toBe('FUNDED');
  return r.milestone;
}

/** A google.protobuf.Timestamp as epoch ms. */
const msOf = (ts: { seconds: string; nanos: number }) => Number(ts.seconds) * 1000 + Math.round(ts.nanos / 1e6);

/** A second milestone of 10.00 of the same parties, never disputed. */
async function fundedMilestoneOf(p: ReturnType<typeof parties>) {
  await deposit(t.client, p.emp, '10.50');
  return fundedMilestone(p, '10.00');
}

const cmd = (method: string, who: string | object, id: string, fields: object = {}, k = key()) =>
  t.client.m(method, who as never, { milestone_id: id, idempotency_key: k, ...fields });

async function revenue(): Promise<string> {
  await ledgerCaughtUp(t.engine);
  const r = await t.db.query<{ balance: string }>(`SELECT balance::text FROM accounts WHERE account_id = 'revenue:USD'`);
  return r.rows[0]?.balance ?? '0';
}

describe('fees', () => {
  it('charges the employer fee on top at funding and deducts the freelancer fee at release, to the revenue account', async () => {
    const p = parties();
    const before = Number(await revenue());
    await deposit(t.client, p.emp, '102.00');
    const m = await fundedMilestone(p, '100.00');
    expect(m.employer_fee).toEqual(usd('2.00'));
    await expectBalance(t.client, p.emp, { available: '0.00', held: '100.00', incoming: '0.00' });
    const released = await cmd('ReleaseMilestone', p.emp, m.id);
    expect(released.milestone).toMatchObject({ status: 'RELEASED', released: usd('100.00'), freelancer_fee: usd('10.00') });
    await expectBalance(t.client, p.fl, { available: '90.00', held: '0.00', incoming: '0.00' });
    expect(Number(await revenue()) - before).toBeCloseTo(12, 6);
    // History shows each fee where it was charged.
    const history = released.milestone.history.map((h: Reply) => [h.type, h.fee?.amount]);
    expect(history).toEqual([
      ['created', '2.00'],
      ['released', '10.00'],
    ]);
    // The ledger entries show them too.
    const empEntries = await t.client.a('ListLedgerEntries', p.emp, { user_id: p.emp });
    // The employer's account actor reserved amount and fee at once: that is the entry on the employer's available balance.
    expect(empEntries.entries.find((e: Reply) => e.kind === 'reserve')).toMatchObject({ amount: usd('-102.00'), fee: usd('2.00') });
    const flEntries = await t.client.a('ListLedgerEntries', p.fl, { user_id: p.fl });
    expect(flEntries.entries).toHaveLength(1);
    expect(flEntries.entries[0]).toMatchObject({ kind: 'release', amount: usd('90.00'), fee: usd('10.00') });
  });

  it('refuses funding that covers the amount but not the fee', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '100.00');
    const err = await failure(
      t.client.m('CreateMilestone', p.emp, { project_id: p.project, freelancer_id: p.fl, amount: usd('100.00'), idempotency_key: key() }),
    );
    expect(err).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    await expectBalance(t.client, p.emp, { available: '100.00', held: '0.00', incoming: '0.00' });
  });

  it('keeps the employer fee when a milestone is cancelled: only the held amount goes back', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '60.00');
    const m = await fundedMilestone(p, '50.00');
    const cancelled = await cmd('CancelMilestone', p.emp, m.id, { reason: 'no longer needed' });
    expect(cancelled.milestone).toMatchObject({ status: 'CANCELLED', returned: usd('50.00'), employer_fee: usd('1.00') });
    await expectBalance(t.client, p.emp, { available: '59.00', held: '0.00', incoming: '0.00' });
  });
});

describe('disputes', () => {
  it('a settlement proposed by one party and accepted by the other splits what is held in one step', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '102.00');
    const m = await fundedMilestone(p, '100.00');
    expect(await failure(cmd('OpenDispute', 'stranger', m.id, { reason: 'x', claimed_amount: usd('1.00') }))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_PARTY',
    });
    const opened = await cmd('OpenDispute', p.fl, m.id, { reason: 'work delivered, not paid', claimed_amount: usd('80.00') });
    expect(opened.milestone).toMatchObject({
      status: 'DISPUTED',
      dispute: { stage: 'NEGOTIATION', filer_id: p.fl, respondent_id: p.emp, claimed_amount: usd('80.00') },
    });
    expect(opened.milestone.dispute.respond_by).toBeTruthy();
    // Frozen: no release or cancel, by anyone.
    for (const [method, who] of [
      ['ReleaseMilestone', p.emp],
      ['CancelMilestone', p.fl],
      ['RequestCancellation', p.emp],
      ['RequestRelease', p.fl],
    ] as const) {
      expect(await failure(cmd(method, who, m.id, { reason_code: 'OTHER' }))).toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        reason: 'ILLEGAL_IN_STATUS',
      });
    }
    expect(await failure(cmd('OpenDispute', p.emp, m.id, { reason: 'again', claimed_amount: usd('1.00') }))).toMatchObject({
      reason: 'ILLEGAL_IN_STATUS',
    });
    expect(await failure(cmd('AcceptSettlement', p.fl, m.id))).toMatchObject({ reason: 'NO_PROPOSAL' });
    expect(await failure(cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('100.01') }))).toMatchObject({
      reason: 'AMOUNT_EXCEEDS_HELD',
    });
    const proposed = await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('60.00') });
    // The respondent answered: no deadline any more.
    expect(proposed.milestone.dispute).toMatchObject({ proposed_by: p.emp, proposed_freelancer_amount: usd('60.00'), respond_by: null });
    expect(await failure(cmd('AcceptSettlement', p.emp, m.id))).toMatchObject({ reason: 'OWN_PROPOSAL' });
    expect(await failure(cmd('AcceptSettlement', 'stranger', m.id))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    expect(await failure(cmd('AcceptSettlement', p.fl, m.id, { freelancer_amount: usd('70.00') }))).toMatchObject({
      reason: 'PROPOSAL_CHANGED',
    });
    const k = key();
    const settled = await cmd('AcceptSettlement', p.fl, m.id, { freelancer_amount: usd('60.00') }, k);
    expect(settled.milestone).toMatchObject({
      status: 'RESOLVED',
      held: usd('0.00'),
      released: usd('60.00'),
      returned: usd('40.00'),
      freelancer_fee: usd('6.00'),
      dispute: { stage: 'RESOLVED', outcome: 'settled', freelancer_amount: usd('60.00') },
    });
    const again = await cmd('AcceptSettlement', p.fl, m.id, { freelancer_amount: usd('60.00') }, k);
    expect(again.milestone.version).toBe(settled.milestone.version);
    expect(await failure(cmd('AcceptSettlement', p.fl, m.id, { freelancer_amount: usd('50.00') }, k))).toMatchObject({
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    await expectBalance(t.client, p.fl, { available: '54.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '40.00', held: '0.00', incoming: '0.00' });
    const last = settled.milestone.history.at(-1);
    expect(last).toMatchObject({
      type: 'resolved',
      actor_id: p.fl,
      amount: usd('100.00'),
      freelancer_amount: usd('60.00'),
      employer_amount: usd('40.00'),
      fee: usd('6.00'),
      outcome: 'settled',
    });
    // An arbiter may look at any milestone.
    expect((await t.client.m('GetMilestone', ARBITER as never, { milestone_id: m.id })).milestone.status).toBe('RESOLVED');
  });

  it('an unanswered dispute grants the filer its claim at the deadline, once (14 days for an employer respondent)', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '51.00');
    const m = await fundedMilestone(p, '50.00');
    await cmd('OpenDispute', p.fl, m.id, { reason: 'silence', claimed_amount: usd('30.00') });
    await ledgerCaughtUp(t.engine);
    clock.advance(13 * DAY);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    clock.advance(DAY + 1000);
    // Too late to answer: the claim is the filer's now, whether or not the timer fired yet.
    expect(await failure(cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('1.00') }))).toMatchObject({
      reason: 'RESPONSE_DEADLINE_PASSED',
    });
    await ledgerCaughtUp(t.engine);
    expect(await t.engine.milestones!.fireDueTimers()).toBeGreaterThanOrEqual(1);
    const got = await t.client.m('GetMilestone', p.fl, { milestone_id: m.id });
    expect(got.milestone).toMatchObject({
      status: 'RESOLVED',
      released: usd('30.00'),
      returned: usd('20.00'),
      dispute: { outcome: 'claim_granted' },
    });
    expect(got.milestone.history.at(-1)).toMatchObject({ type: 'resolved', actor_id: 'system' });
    // Scanning again (the read model may lag) appends nothing more.
    await ledgerCaughtUp(t.engine);
    await t.engine.milestones!.fireDueTimers();
    const after = await t.client.m('GetMilestone', p.fl, { milestone_id: m.id });
    expect(after.milestone.version).toBe(got.milestone.version);
    expect(after.milestone.history.filter((h: Reply) => h.type === 'resolved')).toHaveLength(1);
    await expectBalance(t.client, p.fl, { available: '27.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '20.00', held: '0.00', incoming: '0.00' });
  });

  it('does not fire when the respondent answered in time', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '51.00');
    const m = await fundedMilestone(p, '50.00');
    await cmd('OpenDispute', p.emp, m.id, { reason: 'late', claimed_amount: usd('50.00') });
    clock.advance(3 * DAY);
    await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('25.00') });
    await ledgerCaughtUp(t.engine);
    clock.advance(30 * DAY);
    await t.engine.milestones!.fireDueTimers();
    const got = await t.client.m('GetMilestone', p.emp, { milestone_id: m.id });
    expect(got.milestone).toMatchObject({ status: 'DISPUTED', dispute: { stage: 'NEGOTIATION' } });
  });

  it('escalation after the negotiation window charges the fee; the arbiter decides; the winner gets the fee back', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '102.00');
    const m = await fundedMilestone(p, '100.00');
    await cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('80.00') });
    await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('10.00') });
    expect(await failure(cmd('EscalateDispute', p.fl, m.id))).toMatchObject({ reason: 'NEGOTIATION_WINDOW_OPEN' });
    clock.advance(3 * DAY + 1000);
    // The freelancer has nothing available: refused, still negotiating.
    const short = await failure(cmd('EscalateDispute', p.fl, m.id));
    expect(short).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    // Refused before anything is appended, so being short does not use up escalation attempts (3 per party).
    const before = (await t.client.m('GetMilestone', p.fl, { milestone_id: m.id })).milestone;
    for (let i = 0; i < 4; i++) expect(await failure(cmd('EscalateDispute', p.fl, m.id))).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
    const still = (await t.client.m('GetMilestone', p.fl, { milestone_id: m.id })).milestone;
    expect(still).toMatchObject({ version: before.version, dispute: { stage: 'NEGOTIATION' } });
    await deposit(t.client, p.fl, '5.00');
    const k = key();
    const escalated = await cmd('EscalateDispute', p.fl, m.id, {}, k);
    expect(escalated.milestone.dispute).toMatchObject({ stage: 'ARBITRATION', escalated_by: p.fl, arbitration_fee: usd('5.00') });
    expect((await cmd('EscalateDispute', p.fl, m.id, {}, k)).milestone.version).toBe(escalated.milestone.version);
    await expectBalance(t.client, p.fl, { available: '0.00', held: '5.00', incoming: '100.00' });
    // Only dispute actions: a proposal's own author cannot accept it, and a dispute in arbitration is not withdrawn.
    expect(await failure(cmd('AcceptSettlement', p.emp, m.id))).toMatchObject({ reason: 'OWN_PROPOSAL' });
    expect(await failure(cmd('WithdrawDispute', p.fl, m.id))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
    expect(await failure(cmd('ResolveDispute', p.emp, m.id, { freelancer_amount: usd('0') }))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_ARBITER',
    });
    expect(await failure(cmd('ResolveDispute', { id: p.emp, roles: ['arbiter'] }, m.id, { freelancer_amount: usd('0') }))).toMatchObject({
      reason: 'ARBITER_IS_PARTY',
    });
    expect(await failure(cmd('ResolveDispute', PAYMENTS, m.id, { freelancer_amount: usd('0') }))).toMatchObject({ reason: 'NOT_ARBITER' });
    const resolved = await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('70.00') });
    expect(resolved.milestone).toMatchObject({
      status: 'RESOLVED',
      released: usd('70.00'),
      returned: usd('30.00'),
      dispute: { outcome: 'arbitrated' },
    });
    expect(resolved.milestone.history.at(-1)).toMatchObject({ arbitration_fee: usd('5.00'), arbitration_fee_refunded: true });
    expect(await failure(cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('1.00') }))).toMatchObject({
      reason: 'ILLEGAL_IN_STATUS',
    });
    // 70 less the 7.00 fee, plus the 5.00 arbitration fee back.
    await expectBalance(t.client, p.fl, { available: '68.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '30.00', held: '0.00', incoming: '0.00' });
  });

  it('the escalating party that loses pays the arbitration fee to the platform', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '107.00');
    const m = await fundedMilestone(p, '100.00');
    await cmd('OpenDispute', p.emp, m.id, { reason: 'not delivered', claimed_amount: usd('100.00') });
    await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('90.00') });
    clock.advance(3 * DAY + 1000);
    const before = Number(await revenue());
    await cmd('EscalateDispute', p.emp, m.id);
    await expectBalance(t.client, p.emp, { available: '0.00', held: '105.00', incoming: '0.00' });
    // The employer claimed a refund of 100 and gets 40: not more than half, it lost.
    const resolved = await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('60.00') });
    expect(resolved.milestone.history.at(-1)).toMatchObject({ arbitration_fee_refunded: false });
    await expectBalance(t.client, p.emp, { available: '40.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.fl, { available: '54.00', held: '0.00', incoming: '0.00' });
    expect(Number(await revenue()) - before).toBeCloseTo(11, 6);
  });
});

describe('disputes at the edges', () => {
  it('every dispute command replayed with its key has one effect; the key with other content is refused', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '20.50');
    await deposit(t.client, p.fl, '5.00');
    const m = await fundedMilestone(p, '20.00');
    const replayed = async (method: string, who: string | object, fields: object) => {
      const k = key();
      const first = await cmd(method, who, m.id, fields, k);
      const again = await Promise.all([cmd(method, who, m.id, fields, k), cmd(method, who, m.id, fields, k)]);
      for (const a of again) expect(a.milestone.version).toBe(first.milestone.version);
      return { first, k };
    };
    const open = await replayed('OpenDispute', p.fl, { reason: 'unpaid', claimed_amount: usd('20.00') });
    expect(await failure(cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('19.00') }, open.k))).toMatchObject({
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    const proposed = await replayed('ProposeSettlement', p.emp, { freelancer_amount: usd('8.00') });
    expect(await failure(cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('9.00') }, proposed.k))).toMatchObject({
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    clock.advance(3 * DAY + 1000);
    await replayed('EscalateDispute', p.fl, {});
    const resolved = await replayed('ResolveDispute', ARBITER, { freelancer_amount: usd('15.00') });
    expect(resolved.first.milestone.history.filter((h: Reply) => h.type === 'resolved')).toHaveLength(1);
    expect(await failure(cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('1.00') }, resolved.k))).toMatchObject({
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    // 15.00 less the 1.50 fee, plus the arbitration fee back (won: 15 > 10); the employer 5.00.
    await expectBalance(t.client, p.fl, { available: '18.50', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '5.00', held: '0.00', incoming: '0.00' });
  });

  it('a party refused for funds, then the other escalating: each fee in its own account, the ledger sound', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '107.00');
    const m = await fundedMilestone(p, '100.00');
    await cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('100.00') });
    await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('50.00') });
    clock.advance(3 * DAY + 1000);
    expect(await failure(cmd('EscalateDispute', p.fl, m.id))).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
    const k = key();
    expect((await cmd('EscalateDispute', p.emp, m.id, {}, k)).milestone.dispute).toMatchObject({
      stage: 'ARBITRATION',
      escalated_by: p.emp,
    });
    await expectBalance(t.client, p.emp, { available: '0.00', held: '105.00', incoming: '0.00' });
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
    await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('20.00') });
  });

  it('a replayed escalation that was refused is refused again', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.50');
    const m = await fundedMilestone(p, '10.00');
    await cmd('OpenDispute', p.emp, m.id, { reason: 'late', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('5.00') });
    clock.advance(3 * DAY + 1000);
    const k = key();
    expect(await failure(cmd('EscalateDispute', p.fl, m.id, {}, k))).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
    expect(await failure(cmd('EscalateDispute', p.fl, m.id, {}, k))).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
  });

  it('a milestone at the event limit can still be disputed, escalated and resolved: held money is never stuck', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.00');
    await deposit(t.client, p.fl, '5.00');
    const m = await fundedMilestone(p, '9.00');
    // created (funded), then 199 partial releases: 200 events.
    for (let i = 0; i < 199; i++) await cmd('ReleaseMilestone', p.emp, m.id, { amount: usd('0.01') });
    expect(await failure(cmd('RequestRelease', p.fl, m.id))).toMatchObject({ reason: 'EVENT_LIMIT' });
    await cmd('OpenDispute', p.fl, m.id, { reason: 'the rest', claimed_amount: usd('7.01') });
    await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('1.00') });
    clock.advance(3 * DAY + 1000);
    const escalated = await cmd('EscalateDispute', p.fl, m.id);
    expect(escalated.milestone.dispute.stage).toBe('ARBITRATION');
    const resolved = await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('7.01') });
    expect(resolved.milestone).toMatchObject({ status: 'RESOLVED', held: usd('0.00'), released: usd('9.00') });
    expect(resolved.milestone.version).toBeGreaterThan(200);
  });
});

describe('auto-release', () => {
  it('releases everything held when the review window passes without a release or a dispute', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '40.80');
    const m = await fundedMilestone(p, '40.00', { review_window_seconds: 3600 });
    expect(m.review_window_seconds).toBe(3600);
    const asked = await cmd('RequestRelease', p.fl, m.id);
    expect(asked.milestone.auto_release_at).toBeTruthy();
    await ledgerCaughtUp(t.engine);
    clock.advance(59 * 60_000);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    clock.advance(2 * 60_000);
    await eventually(async () => {
      await t.engine.milestones!.fireDueTimers();
      const got = await t.client.m('GetMilestone', p.emp, { milestone_id: m.id });
      expect(got.milestone).toMatchObject({ status: 'RELEASED', released: usd('40.00') });
      expect(got.milestone.history.at(-1)).toMatchObject({ type: 'released', actor_id: 'system', outcome: 'automatic', fee: usd('4.00') });
    });
    await expectBalance(t.client, p.fl, { available: '36.00', held: '0.00', incoming: '0.00' });
  });

  it('does not release when the employer disputes within the window', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.50');
    const m = await fundedMilestone(p, '10.00', { review_window_seconds: 60 });
    await cmd('RequestRelease', p.fl, m.id);
    await cmd('OpenDispute', p.emp, m.id, { reason: 'not what was asked', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('5.00') });
    await ledgerCaughtUp(t.engine);
    clock.advance(10 * 60_000);
    await t.engine.milestones!.fireDueTimers();
    const got = await t.client.m('GetMilestone', p.emp, { milestone_id: m.id });
    expect(got.milestone).toMatchObject({ status: 'DISPUTED', auto_release_at: null });
  });

  it('is off unless asked for', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.50');
    const m = await fundedMilestone(p, '10.00');
    const asked = await cmd('RequestRelease', p.fl, m.id);
    expect(asked.milestone).toMatchObject({ review_window_seconds: 0, auto_release_at: null });
    await ledgerCaughtUp(t.engine);
    clock.advance(365 * DAY);
    await t.engine.milestones!.fireDueTimers();
    expect((await t.client.m('GetMilestone', p.emp, { milestone_id: m.id })).milestone.status).toBe('RELEASE_REQUESTED');
  });
});

describe('disputes withdrawn, conceded, and settled in arbitration', () => {
  it('the filer withdraws: back to RELEASE_REQUESTED, the money held, the review window running with the time it had left', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '40.80');
    const m = await fundedMilestone(p, '40.00', { review_window_seconds: 3600 });
    await cmd('RequestRelease', p.fl, m.id);
    clock.advance(20 * 60_000);
    await cmd('OpenDispute', p.emp, m.id, { reason: 'not what was asked', claimed_amount: usd('40.00') });
    clock.advance(2 * DAY);
    expect(await failure(cmd('WithdrawDispute', 'stranger', m.id))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_PARTY',
    });
    expect(await failure(cmd('WithdrawDispute', p.fl, m.id))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'NOT_FILER' });
    const k = key();
    const back = await cmd('WithdrawDispute', p.emp, m.id, {}, k);
    expect(back.milestone).toMatchObject({
      status: 'RELEASE_REQUESTED',
      held: usd('40.00'),
      dispute: { stage: 'WITHDRAWN', outcome: 'withdrawn', respond_by: null },
    });
    // Exactly what was left when the dispute opened (the window's end less the opening), from the withdrawal on.
    const at = (type: string) => msOf(back.milestone.history.find((h: Reply) => h.type === type).at);
    const left = at('release_requested') + 3_600_000 - at('dispute_opened');
    expect(Math.abs(left - 40 * 60_000)).toBeLessThan(1_000);
    expect(msOf(back.milestone.auto_release_at)).toBe(at('dispute_withdrawn') + left);
    expect(back.milestone.history.at(-1)).toMatchObject({ type: 'dispute_withdrawn', actor_id: p.emp });
    // Replayed with its key: the same answer, no second event.
    expect((await cmd('WithdrawDispute', p.emp, m.id, {}, k)).milestone.version).toBe(back.milestone.version);
    await expectBalance(t.client, p.emp, { available: '0.00', held: '40.00', incoming: '0.00' });
    await ledgerCaughtUp(t.engine);
    clock.advance(39 * 60_000);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    clock.advance(2 * 60_000);
    await eventually(async () => {
      await t.engine.milestones!.fireDueTimers();
      expect((await t.client.m('GetMilestone', p.emp, { milestone_id: m.id })).milestone.status).toBe('RELEASED');
    });
    await expectBalance(t.client, p.fl, { available: '36.00', held: '0.00', incoming: '0.00' });
  });

  it('the respondent accepts the claim: resolved at once with the filer getting what it claimed', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '51.00');
    const m = await fundedMilestone(p, '50.00');
    await cmd('OpenDispute', p.fl, m.id, { reason: 'half delivered, half paid', claimed_amount: usd('30.00') });
    expect(await failure(cmd('AcceptClaim', p.fl, m.id))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'NOT_RESPONDENT' });
    expect(await failure(cmd('AcceptClaim', p.emp, (await fundedMilestoneOf(p)).id))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
    const k = key();
    const conceded = await cmd('AcceptClaim', p.emp, m.id, {}, k);
    expect(conceded.milestone).toMatchObject({
      status: 'RESOLVED',
      held: usd('0.00'),
      released: usd('30.00'),
      returned: usd('20.00'),
      dispute: { stage: 'RESOLVED', outcome: 'claim_accepted', freelancer_amount: usd('30.00') },
    });
    expect((await cmd('AcceptClaim', p.emp, m.id, {}, k)).milestone.version).toBe(conceded.milestone.version);
    // 30 less the 3.00 fee; the employer gets 20 back (the second milestone of 10 is still held).
    await expectBalance(t.client, p.fl, { available: '27.00', held: '0.00', incoming: '10.00' });
    await expectBalance(t.client, p.emp, { available: '20.00', held: '10.00', incoming: '0.00' });
  });

  it('in arbitration the parties settle before the arbiter decides: the split is theirs, the fee follows who won', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '107.00');
    const m = await fundedMilestone(p, '100.00');
    await cmd('OpenDispute', p.emp, m.id, { reason: 'not delivered', claimed_amount: usd('100.00') });
    await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('90.00') });
    clock.advance(3 * DAY + 1000);
    const before = Number(await revenue());
    expect((await cmd('EscalateDispute', p.emp, m.id)).milestone.dispute.stage).toBe('ARBITRATION');
    const proposed = await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('60.00') });
    expect(proposed.milestone.dispute).toMatchObject({ stage: 'ARBITRATION', proposed_by: p.fl, proposed_freelancer_amount: usd('60.00') });
    expect(await failure(cmd('AcceptSettlement', p.emp, m.id, { freelancer_amount: usd('90.00') }))).toMatchObject({
      reason: 'PROPOSAL_CHANGED',
    });
    const settled = await cmd('AcceptSettlement', p.emp, m.id, { freelancer_amount: usd('60.00') });
    expect(settled.milestone).toMatchObject({
      status: 'RESOLVED',
      released: usd('60.00'),
      returned: usd('40.00'),
      dispute: { outcome: 'settled' },
    });
    // The employer claimed 100 and settled for 40: not more than half, so its arbitration fee goes to the platform.
    expect(settled.milestone.history.at(-1)).toMatchObject({ arbitration_fee: usd('5.00'), arbitration_fee_refunded: false });
    expect(await failure(cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('1.00') }))).toMatchObject({
      reason: 'ILLEGAL_IN_STATUS',
    });
    await expectBalance(t.client, p.emp, { available: '40.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.fl, { available: '54.00', held: '0.00', incoming: '0.00' });
    // The employer fee (2.00), the freelancer fee (6.00) and the arbitration fee (5.00).
    expect(Number(await revenue()) - before).toBeCloseTo(11, 6);
  });

  it('a concession in arbitration refunds the fee of an escalating filer', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '102.00');
    await deposit(t.client, p.fl, '5.00');
    const m = await fundedMilestone(p, '100.00');
    await cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('100.00') });
    await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('10.00') });
    clock.advance(3 * DAY + 1000);
    await cmd('EscalateDispute', p.fl, m.id);
    await expectBalance(t.client, p.fl, { available: '0.00', held: '5.00', incoming: '100.00' });
    const conceded = await cmd('AcceptClaim', p.emp, m.id);
    expect(conceded.milestone.history.at(-1)).toMatchObject({
      type: 'resolved',
      outcome: 'claim_accepted',
      arbitration_fee_refunded: true,
    });
    // 100 less the 10.00 fee, and the 5.00 fee back.
    await expectBalance(t.client, p.fl, { available: '95.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '0.00', held: '0.00', incoming: '0.00' });
  });
});

describe('evidence and the arbiters queue', () => {
  const sha = (c: string) => c.repeat(64);
  it('either party attaches evidence references while the dispute is open; the arbiter sees them', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.50');
    const m = await fundedMilestone(p, '10.00');
    expect(await failure(cmd('AttachEvidence', p.fl, m.id, { uri: 'https://f.example/a', sha256: sha('a') }))).toMatchObject({
      reason: 'ILLEGAL_IN_STATUS',
    });
    await cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('10.00') });
    for (const [fields, reason] of [
      [{ uri: 'not a uri', sha256: sha('a') }, 'URI_INVALID'],
      [{ uri: 'javascript:alert(1)', sha256: sha('a') }, 'URI_INVALID'],
      [{ uri: '', sha256: sha('a') }, 'FIELD_REQUIRED'],
      [{ uri: 'https://f.example/a', sha256: 'abc' }, 'SHA256_INVALID'],
      [{ uri: 'https://f.example/a', sha256: sha('a'), note: 'x'.repeat(501) }, 'TEXT_TOO_LONG'],
      [{ uri: `https://f.example/${'a'.repeat(1024)}`, sha256: sha('a') }, 'TEXT_TOO_LONG'],
    ] as const)
      expect(await failure(cmd('AttachEvidence', p.fl, m.id, fields))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
    expect(await failure(cmd('AttachEvidence', 'stranger', m.id, { uri: 'https://f.example/a', sha256: sha('a') }))).toMatchObject({
      reason: 'NOT_PARTY',
    });
    const k = key();
    const first = await cmd(
      'AttachEvidence',
      p.fl,
      m.id,
      { uri: 'https://f.example/delivery.zip', sha256: sha('A'), note: 'the delivery' },
      k,
    );
    expect(
      (await cmd('AttachEvidence', p.fl, m.id, { uri: 'https://f.example/delivery.zip', sha256: sha('A'), note: 'the delivery' }, k))
        .milestone.version,
    ).toBe(first.milestone.version);
    for (let i = 0; i < 4; i++) await cmd('AttachEvidence', p.fl, m.id, { uri: `s3://bucket/${i}`, sha256: sha('b') });
    expect(await failure(cmd('AttachEvidence', p.fl, m.id, { uri: 's3://bucket/x', sha256: sha('b') }))).toMatchObject({
      reason: 'EVIDENCE_LIMIT',
    });
    await cmd('AttachEvidence', p.emp, m.id, { uri: 'https://f.example/chat.txt', sha256: sha('c'), note: 'our chat' });
    const seen = (await t.client.m('GetMilestone', ARBITER, { milestone_id: m.id })).milestone.dispute.evidence;
    expect(seen).toHaveLength(6);
    expect(seen[0]).toMatchObject({ attached_by: p.fl, uri: 'https://f.example/delivery.zip', sha256: sha('a'), note: 'the delivery' });
    expect(seen[5]).toMatchObject({ attached_by: p.emp, note: 'our chat' });
    // Nothing moved.
    await expectBalance(t.client, p.emp, { available: '0.00', held: '10.00', incoming: '0.00' });
  });

  it('ListDisputes gives arbiters the open disputes by stage, in pages, each once', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '21.00');
    const negotiating = await fundedMilestone(p, '10.00');
    await cmd('OpenDispute', p.fl, negotiating.id, { reason: 'unpaid', claimed_amount: usd('10.00') });
    const arbitrated = await fundedMilestone(p, '10.00');
    await cmd('OpenDispute', p.fl, arbitrated.id, { reason: 'unpaid', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', p.emp, arbitrated.id, { freelancer_amount: usd('1.00') });
    clock.advance(3 * DAY + 1000);
    await deposit(t.client, p.fl, '5.00');
    await cmd('EscalateDispute', p.fl, arbitrated.id);
    expect(await failure(t.client.m('ListDisputes', p.emp, {}))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_ARBITER',
    });
    expect(await failure(t.client.m('ListDisputes', ARBITER, { stage: 'RESOLVED' }))).toMatchObject({ reason: 'STAGE_INVALID' });
    await ledgerCaughtUp(t.engine);
    const walk = async (stage: string) => {
      const ids: string[] = [];
      let token = '';
      do {
        const page = await t.client.m('ListDisputes', ARBITER, { stage, page_size: 2, page_token: token });
        for (const m of page.milestones as Reply[]) {
          if (stage) expect(m.dispute.stage).toBe(stage);
          ids.push(m.id);
        }
        token = page.next_page_token;
      } while (token);
      expect(new Set(ids).size).toBe(ids.length);
      return ids;
    };
    const inArbitration = await walk('ARBITRATION');
    expect(inArbitration).toContain(arbitrated.id);
    expect(inArbitration).not.toContain(negotiating.id);
    expect(await walk('NEGOTIATION')).toContain(negotiating.id);
    const all = await walk('');
    expect(all).toEqual(expect.arrayContaining([arbitrated.id, negotiating.id]));
    await cmd('ResolveDispute', ARBITER, arbitrated.id, { freelancer_amount: usd('5.00') });
    await ledgerCaughtUp(t.engine);
    expect(await walk('')).not.toContain(arbitrated.id);
  });
});

describe('disputes frozen by support staff', () => {
  const SUPPORT = { id: 'support-d', roles: ['support'] };
  it('a frozen negotiation keeps its stage, and its negotiation window does not run while frozen', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '15.50');
    const m = await fundedMilestone(p, '10.00');
    const opened = await cmd('OpenDispute', p.emp, m.id, { reason: 'late', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', p.fl, m.id, { freelancer_amount: usd('5.00') });
    const possibleAt = msOf(opened.milestone.dispute.escalation_possible_at);
    const frozen = await cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'review' });
    expect(frozen.milestone).toMatchObject({ status: 'FROZEN', dispute: { stage: 'NEGOTIATION', outcome: '' } });
    clock.advance(2 * DAY);
    const back = await cmd('UnfreezeMilestone', SUPPORT, m.id, { reason: 'ok' });
    const at = (type: string) => msOf(back.milestone.history.find((h: Reply) => h.type === type).at);
    expect(msOf(back.milestone.dispute.escalation_possible_at)).toBe(possibleAt + at('unfrozen') - at('frozen'));
    // Three days after the opening, but only one of negotiation: not yet.
    clock.advance(DAY + 1000);
    expect(await failure(cmd('EscalateDispute', p.emp, m.id))).toMatchObject({ reason: 'NEGOTIATION_WINDOW_OPEN' });
    clock.advance(2 * DAY);
    expect((await cmd('EscalateDispute', p.emp, m.id)).milestone.dispute.stage).toBe('ARBITRATION');
  });

  it('frozen in arbitration with a fee held: still ARBITRATION, off the arbiters queue, the ledger sound', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.50');
    await deposit(t.client, p.fl, '5.00');
    const m = await fundedMilestone(p, '10.00');
    await cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('10.00') });
    await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('1.00') });
    clock.advance(3 * DAY + 1000);
    await cmd('EscalateDispute', p.fl, m.id);
    const frozen = await cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'identity check' });
    expect(frozen.milestone).toMatchObject({ status: 'FROZEN', dispute: { stage: 'ARBITRATION', arbitration_fee: usd('5.00') } });
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
    const queue = await t.client.m('ListDisputes', ARBITER, { stage: 'ARBITRATION', page_size: 200 });
    expect(queue.milestones.map((x: Reply) => x.id)).not.toContain(m.id);
    await cmd('UnfreezeMilestone', SUPPORT, m.id, { reason: 'ok' });
    const resolved = await cmd('ResolveDispute', ARBITER, m.id, { freelancer_amount: usd('10.00') });
    expect(resolved.milestone.history.at(-1)).toMatchObject({ arbitration_fee_refunded: true });
    // 10.00 less the 1.00 fee, and the 5.00 arbitration fee back.
    await expectBalance(t.client, p.fl, { available: '14.00', held: '0.00', incoming: '0.00' });
  });
});

describe('the ledger after fees, disputes and timers', () => {
  it('holds together', async () => {
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });

  it('applying every event again (fee holds, splits, arbitration fees, timers) changes nothing', async () => {
    await ledgerCaughtUp(t.engine);
    const before = await ledgerSnapshot(t);
    expect(before.postings.map((p: { kind: string }) => p.kind)).toEqual(
      expect.arrayContaining(['hold', 'release', 'return', 'settle', 'fee_hold']),
    );
    expect(await reapplyWholeStream(t)).toBeGreaterThan(50);
    expect(await ledgerSnapshot(t)).toEqual(before);
    await expectLedgerSound(t.engine);
  });
});
