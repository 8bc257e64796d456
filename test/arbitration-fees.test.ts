import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, TestClock, useEngine } from './helpers/engine.js';
import { deposit, expectBalance, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp, ledgerSnapshot, reapplyWholeStream } from './helpers/ledger.js';
import { audit } from '../src/ledger/audit.js';
import type { Reply } from '../src/client.js';

/**
 * Terms that ask both parties for the arbitration fee (ESCROW_ARBITRATION_FEE_DEADLINE), through
 * the gRPC API: the escalating party pays, the other party pays by the deadline or loses by
 * default, and the winner's fee goes back while the loser's goes to the platform.
 */
const DAY = 86_400_000;
const FEES = { USD: { employer: { percent: '2', minimum: '0.50' }, freelancer: { percent: '10', minimum: '1.00' }, arbitration: '5.00' } };
const clock = new TestClock();
const t = useEngine({
  now: clock.now,
  env: {
    ESCROW_FEES: JSON.stringify(FEES),
    ESCROW_ARBITRATION_FEE_DEADLINE: '2d',
    // Timers are fired by hand (fireDueTimers).
    ESCROW_TIMER_SCAN_MS: '3600000',
    // Every fee decision waits this long after its event, so a test can spend the money in between.
    ESCROW_FAULT_FEE_DECISION_DELAY_MS: '700',
  },
});
const ARBITER = { id: 'arb-af', roles: ['arbiter'] };

let n = 0;
function parties() {
  n++;
  return { emp: `emp-af${n}`, fl: `fl-af${n}`, project: `proj-af${n}` };
}

const cmd = (method: string, who: string | object, id: string, fields: object = {}, k = key()) =>
  t.client.m(method, who as never, { milestone_id: id, idempotency_key: k, ...fields });

const get = async (who: string, id: string) => (await t.client.m('GetMilestone', who, { milestone_id: id })).milestone;

const msOf = (ts: { seconds: string; nanos: number }) => Number(ts.seconds) * 1000 + Math.round(ts.nanos / 1e6);

async function revenue(): Promise<number> {
  await ledgerCaughtUp(t.engine);
  const r = await t.db.query<{ balance: string }>(`SELECT balance::text FROM accounts WHERE account_id = 'revenue:USD'`);
  return Number(r.rows[0]?.balance ?? '0');
}

/** A funded milestone of `amount` (the employer deposits the amount, the 2% fee and `extra`) disputed by `filer` for `claim`, past its negotiation window. */
async function disputed(p: ReturnType<typeof parties>, amount: string, filer: 'emp' | 'fl', claim: string, extra = '0') {
  const fee = Math.max(0.5, Math.round(Number(amount) * 2) / 100);
  await deposit(t.client, p.emp, (Number(amount) + fee + Number(extra)).toFixed(2));
  const m = (
    await t.client.m('CreateMilestone', p.emp, { project_id: p.project, freelancer_id: p.fl, amount: usd(amount), idempotency_key: key() })
  ).milestone;
  await cmd('OpenDispute', p[filer], m.id, { reason: 'disagreement', claimed_amount: usd(claim) });
  // The respondent answers, so no response deadline runs; then the negotiation window passes.
  const respondent = filer === 'emp' ? p.fl : p.emp;
  await cmd('ProposeSettlement', respondent, m.id, { freelancer_amount: usd(filer === 'emp' ? amount : '0.00') });
  clock.advance(3 * DAY + 1000);
  return m.id as string;
}

describe('arbitration fees of both parties', () => {
  it('the escalating party pays, then the other; the arbiter decides; the winner gets its fee back and the loser pays the platform', async () => {
    const p = parties();
    const before = await revenue();
    const id = await disputed(p, '100.00', 'fl', '80.00', '5.00');
    await deposit(t.client, p.fl, '5.00');
    const escalated = (await cmd('EscalateDispute', p.fl, id)).milestone;
    expect(escalated).toMatchObject({
      status: 'DISPUTED',
      dispute: { stage: 'AWAITING_FEE', escalated_by: p.fl, arbitration_fee: usd('5.00'), fee_due_from: p.emp, second_fee_paid_by: '' },
    });
    expect(msOf(escalated.dispute.fee_due_by) - clock.now().getTime()).toBeGreaterThan(2 * DAY - 60_000);
    expect(escalated.history.at(-1)).toMatchObject({ type: 'arbitration_fee_due', arbitration_fee: usd('5.00') });
    await expectBalance(t.client, p.fl, { available: '0.00', held: '5.00', incoming: '100.00' });
    // Who may pay: the other party only; nobody decides before both paid.
    expect(await failure(cmd('PayArbitrationFee', p.fl, id))).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      reason: 'FEE_ALREADY_PAID',
    });
    expect(await failure(cmd('PayArbitrationFee', 'stranger-af', id))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_PARTY',
    });
    expect(await failure(cmd('PayArbitrationFee', ARBITER, id))).toMatchObject({ reason: 'NOT_PARTY' });
    expect(await failure(cmd('ResolveDispute', ARBITER, id, { freelancer_amount: usd('70.00') }))).toMatchObject({
      reason: 'ILLEGAL_IN_STATUS',
    });
    expect(await failure(cmd('EscalateDispute', p.emp, id))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
    expect(await failure(cmd('WithdrawDispute', p.fl, id))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
    const k = key();
    const paid = (await cmd('PayArbitrationFee', p.emp, id, {}, k)).milestone;
    expect(paid.dispute).toMatchObject({
      stage: 'ARBITRATION',
      fee_due_from: '',
      fee_due_by: null,
      second_fee_paid_by: p.emp,
      second_arbitration_fee: usd('5.00'),
    });
    expect(paid.history.at(-1)).toMatchObject({ type: 'escalated', arbitration_fee: usd('5.00'), second_arbitration_fee: usd('5.00') });
    // The key again: the same answer, nothing charged twice.
    const again = await Promise.all([cmd('PayArbitrationFee', p.emp, id, {}, k), cmd('PayArbitrationFee', p.emp, id, {}, k)]);
    for (const a of again) expect(a.milestone.version).toBe(paid.version);
    await expectBalance(t.client, p.emp, { available: '0.00', held: '105.00', incoming: '0.00' });
    const resolved = (await cmd('ResolveDispute', ARBITER, id, { freelancer_amount: usd('70.00') })).milestone;
    expect(resolved).toMatchObject({
      status: 'RESOLVED',
      released: usd('70.00'),
      returned: usd('30.00'),
      dispute: { outcome: 'arbitrated' },
    });
    // The freelancer claimed 80 and got 70: it won, its fee back; the employer's fee to the platform.
    expect(resolved.history.at(-1)).toMatchObject({
      type: 'resolved',
      arbitration_fee: usd('5.00'),
      arbitration_fee_refunded: true,
      second_arbitration_fee: usd('5.00'),
      second_arbitration_fee_refunded: false,
    });
    await expectBalance(t.client, p.fl, { available: '68.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '30.00', held: '0.00', incoming: '0.00' });
    // The employer fee 2.00, the freelancer fee 7.00 and the loser's arbitration fee 5.00.
    expect((await revenue()) - before).toBeCloseTo(14, 6);
    await expectLedgerSound(t.engine);
  });

  it('a party that does not pay by the deadline loses by default: the escalating respondent keeps the filer from its claim', async () => {
    const p = parties();
    const id = await disputed(p, '50.00', 'fl', '50.00', '5.00');
    const dueBy = (await cmd('EscalateDispute', p.emp, id)).milestone.dispute.fee_due_by;
    // A proposal by the respondent (the escalating party) does not end the fee's deadline.
    const proposed = (await cmd('ProposeSettlement', p.emp, id, { freelancer_amount: usd('10.00') })).milestone;
    expect(proposed.dispute).toMatchObject({ stage: 'AWAITING_FEE', fee_due_by: dueBy, fee_due_from: p.fl });
    // The freelancer has nothing available: refused before any event, the deadline still running.
    const v = (await get(p.fl, id)).version;
    expect(await failure(cmd('PayArbitrationFee', p.fl, id))).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
    expect((await get(p.fl, id)).version).toBe(v);
    await ledgerCaughtUp(t.engine);
    clock.advance(2 * DAY - 60_000);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    clock.advance(120_000);
    // Past the deadline only the timer's default is accepted, even with the money there now.
    await deposit(t.client, p.fl, '5.00');
    expect(await failure(cmd('PayArbitrationFee', p.fl, id))).toMatchObject({ reason: 'FEE_DEADLINE_PASSED' });
    expect(await failure(cmd('ProposeSettlement', p.fl, id, { freelancer_amount: usd('10.00') }))).toMatchObject({
      reason: 'FEE_DEADLINE_PASSED',
    });
    expect(await failure(cmd('AcceptClaim', p.emp, id))).toMatchObject({ reason: 'FEE_DEADLINE_PASSED' });
    expect(await t.engine.milestones!.fireDueTimers()).toBeGreaterThanOrEqual(1);
    const resolved = await get(p.emp, id);
    expect(resolved).toMatchObject({
      status: 'RESOLVED',
      released: usd('0.00'),
      returned: usd('50.00'),
      dispute: { outcome: 'fee_unpaid', freelancer_amount: usd('0.00') },
    });
    expect(resolved.history.at(-1)).toMatchObject({ type: 'resolved', actor_id: 'system', arbitration_fee_refunded: true });
    expect(resolved.history.at(-1).second_arbitration_fee).toBeNull();
    await ledgerCaughtUp(t.engine);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    expect((await get(p.emp, id)).history.filter((h: Reply) => h.type === 'resolved')).toHaveLength(1);
    // The 50 back and the employer's own fee back; the freelancer keeps its deposit.
    await expectBalance(t.client, p.emp, { available: '55.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.fl, { available: '5.00', held: '0.00', incoming: '0.00' });
    await expectLedgerSound(t.engine);
  });

  it('an escalating filer wins its claim by default', async () => {
    const p = parties();
    // The employer claims a refund of 30 of the 50 held.
    const id = await disputed(p, '50.00', 'emp', '30.00', '5.00');
    await cmd('EscalateDispute', p.emp, id);
    await ledgerCaughtUp(t.engine);
    clock.advance(2 * DAY + 1000);
    await t.engine.milestones!.fireDueTimers();
    await eventually(async () =>
      expect(await get(p.emp, id)).toMatchObject({
        status: 'RESOLVED',
        returned: usd('30.00'),
        released: usd('20.00'),
        dispute: { outcome: 'fee_unpaid' },
      }),
    );
    // 20 less the 2.00 freelancer fee; the employer its 30 and its fee.
    await expectBalance(t.client, p.fl, { available: '18.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '35.00', held: '0.00', incoming: '0.00' });
  });

  it('the parties may still settle while a fee is awaited; the escalating party gets its fee back if it won', async () => {
    const p = parties();
    const id = await disputed(p, '100.00', 'fl', '100.00');
    await deposit(t.client, p.fl, '5.00');
    await cmd('EscalateDispute', p.fl, id);
    await cmd('AttachEvidence', p.emp, id, { uri: 'https://files.example/log.txt', sha256: 'b'.repeat(64), note: 'the log' });
    // The employer concedes rather than pay: the freelancer gets its claim and its fee back.
    const conceded = (await cmd('AcceptClaim', p.emp, id)).milestone;
    expect(conceded).toMatchObject({ status: 'RESOLVED', released: usd('100.00'), dispute: { outcome: 'claim_accepted' } });
    expect(conceded.history.at(-1)).toMatchObject({ arbitration_fee_refunded: true });
    await expectBalance(t.client, p.fl, { available: '95.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '0.00', held: '0.00', incoming: '0.00' });
  });

  it('a freeze stops the fee deadline; the unfreeze gives it back the time it had left', async () => {
    const p = parties();
    const id = await disputed(p, '20.00', 'fl', '20.00');
    await deposit(t.client, p.fl, '5.00');
    const dueBy = msOf((await cmd('EscalateDispute', p.fl, id)).milestone.dispute.fee_due_by);
    const support = { id: 'support-af', roles: ['support'] };
    const frozen = (await cmd('FreezeMilestone', support, id, { reason: 'fraud check' })).milestone;
    expect(frozen).toMatchObject({ status: 'FROZEN', dispute: { stage: 'AWAITING_FEE', fee_due_from: p.emp, fee_due_by: null } });
    expect(await failure(cmd('PayArbitrationFee', p.emp, id))).toMatchObject({ reason: 'MILESTONE_FROZEN' });
    await ledgerCaughtUp(t.engine);
    clock.advance(5 * DAY);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    const unfrozen = (await cmd('UnfreezeMilestone', support, id, { reason: 'cleared' })).milestone;
    expect(unfrozen.dispute.stage).toBe('AWAITING_FEE');
    expect(msOf(unfrozen.dispute.fee_due_by) - dueBy).toBeGreaterThanOrEqual(5 * DAY - 1000);
    await deposit(t.client, p.emp, '5.00');
    expect((await cmd('PayArbitrationFee', p.emp, id)).milestone.dispute.stage).toBe('ARBITRATION');
  });

  it('a fee the account refuses after its event (the money spent meanwhile) leaves the fee due, charged nothing; a second attempt pays', async () => {
    const p = parties();
    const id = await disputed(p, '20.00', 'fl', '20.00');
    await deposit(t.client, p.fl, '5.00');
    await cmd('EscalateDispute', p.fl, id);
    await deposit(t.client, p.emp, '5.00');
    await ledgerCaughtUp(t.engine);
    // The read model says the employer can pay; its account decides only after the delay, when the money is gone.
    const paying = failure(cmd('PayArbitrationFee', p.emp, id));
    await eventually(async () => expect((await get(p.emp, id)).dispute.stage).toBe('ESCALATING'), 5_000, 10);
    const w = await t.client.a('Withdraw', p.emp, { amount: usd('5.00'), external_reference: key('w') });
    expect(w.status).toBe('APPLIED');
    expect(await paying).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    const after = await get(p.emp, id);
    expect(after.dispute).toMatchObject({ stage: 'AWAITING_FEE', escalation_failure_reason: 'INSUFFICIENT_FUNDS', second_fee_paid_by: '' });
    expect(after.history.at(-1).type).toBe('arbitration_fee_failed');
    await expectBalance(t.client, p.emp, { available: '0.00', held: '20.00', incoming: '0.00' });
    await deposit(t.client, p.emp, '5.00');
    expect((await cmd('PayArbitrationFee', p.emp, id)).milestone.dispute).toMatchObject({
      stage: 'ARBITRATION',
      second_fee_paid_by: p.emp,
    });
    await expectBalance(t.client, p.emp, { available: '0.00', held: '25.00', incoming: '0.00' });
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });

  it('a fee and a withdrawal of the same money at once: exactly one of them gets it', async () => {
    for (let round = 0; round < 3; round++) {
      const p = parties();
      const id = await disputed(p, '20.00', 'fl', '20.00');
      await deposit(t.client, p.fl, '5.00');
      await cmd('EscalateDispute', p.fl, id);
      await deposit(t.client, p.emp, '5.00');
      await ledgerCaughtUp(t.engine);
      const [fee, withdrawal] = await Promise.allSettled([
        cmd('PayArbitrationFee', p.emp, id),
        t.client.a('Withdraw', p.emp, { amount: usd('5.00'), external_reference: key('w') }),
      ]);
      const feePaid = fee.status === 'fulfilled';
      const withdrawn = withdrawal.status === 'fulfilled' && withdrawal.value.status === 'APPLIED';
      expect([feePaid, withdrawn].filter(Boolean)).toHaveLength(1);
      await expectBalance(t.client, p.emp, { available: '0.00', held: feePaid ? '25.00' : '20.00', incoming: '0.00' });
    }
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });

  it('the ledger re-applied from the whole stream gives the same postings and balances', async () => {
    await ledgerCaughtUp(t.engine);
    const before = await ledgerSnapshot(t);
    expect(await reapplyWholeStream(t)).toBeGreaterThan(20);
    expect(await ledgerSnapshot(t)).toEqual(before);
    await expectLedgerSound(t.engine);
  });
});

describe('the auditor on arbitration fees', () => {
  it('flags a third fee, and a fee held by someone not a party (planted)', async () => {
    const p = parties();
    const id = await disputed(p, '20.00', 'fl', '20.00', '5.00');
    await deposit(t.client, p.fl, '5.00');
    await cmd('EscalateDispute', p.fl, id);
    await cmd('PayArbitrationFee', p.emp, id);
    await ledgerCaughtUp(t.engine);
    expect((await audit(t.engine.pool)).filter((x) => x.check === 'one_arbitration_fee_per_party')).toEqual([]);
    // Planted: a fee account of a stranger for this dispute, as a forged posting would leave it.
    const planted = `arbitration:${id}:mallory`;
    await t.db.query(
      `INSERT INTO accounts (account_id, kind, owner_id, currency, balance) VALUES ($1, 'arbitration', 'mallory', 'USD', 5)`,
      [planted],
    );
    try {
      const found = (await audit(t.engine.pool)).filter((x) => x.check === 'one_arbitration_fee_per_party');
      expect(found).toHaveLength(1);
      expect(found[0]!.detail).toContain('3 arbitration accounts hold a fee, 1 of them');
    } finally {
      await t.db.query(`DELETE FROM accounts WHERE account_id = $1`, [planted]);
    }
  });
});
