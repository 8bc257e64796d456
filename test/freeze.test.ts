import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, TestClock, useEngine } from './helpers/engine.js';
import { deposit, expectBalance, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

/** FreezeMilestone / UnfreezeMilestone by support staff, through the gRPC API: nothing moves money while frozen. */
const clock = new TestClock();
const t = useEngine({ now: clock.now, env: { ESCROW_TIMER_SCAN_MS: '3600000' } });
const SUPPORT = { id: 'support-1', roles: ['support'] };
const MINUTE = 60_000;

let n = 0;
function parties() {
  n++;
  return { emp: `emp-f${n}`, fl: `fl-f${n}`, project: `proj-f${n}` };
}

const cmd = (method: string, who: string | object, id: string, fields: object = {}, k = key()) =>
  t.client.m(method, who as never, { milestone_id: id, idempotency_key: k, ...fields });

async function releaseRequested(p: ReturnType<typeof parties>) {
  await deposit(t.client, p.emp, '30.00');
  const m = (
    await t.client.m('CreateMilestone', p.emp, {
      project_id: p.project,
      freelancer_id: p.fl,
      amount: usd('30.00'),
      review_window_seconds: 3600,
      idempotency_key: key(),
    })
  ).milestone;
  await cmd('RequestRelease', p.fl, m.id);
  return m;
}

describe('freeze', () => {
  it('stops every party command and the review window; the unfreeze resumes it with the time it had left', async () => {
    const p = parties();
    const m = await releaseRequested(p);
    clock.advance(15 * MINUTE);
    // Who may: the support role, not a party; a reason is required.
    expect(await failure(cmd('FreezeMilestone', p.emp, m.id, { reason: 'x' }))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_SUPPORT',
    });
    expect(await failure(cmd('FreezeMilestone', { id: p.fl, roles: ['support'] }, m.id, { reason: 'x' }))).toMatchObject({
      reason: 'SUPPORT_IS_PARTY',
    });
    expect(await failure(cmd('FreezeMilestone', SUPPORT, m.id, { reason: ' ' }))).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      reason: 'FIELD_REQUIRED',
    });
    const k = key();
    const frozen = await cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'chargeback on the deposit' }, k);
    expect(frozen.milestone).toMatchObject({
      status: 'FROZEN',
      held: usd('30.00'),
      auto_release_at: null,
      freeze: { reason: 'chargeback on the deposit', frozen_by: SUPPORT.id, previous_status: 'RELEASE_REQUESTED' },
    });
    expect((await cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'chargeback on the deposit' }, k)).milestone.version).toBe(
      frozen.milestone.version,
    );
    for (const [method, who, fields] of [
      ['ReleaseMilestone', p.emp, {}],
      ['CancelMilestone', p.fl, {}],
      ['OpenDispute', p.emp, { reason: 'x', claimed_amount: usd('1.00') }],
      ['RequestCancellation', p.emp, { reason_code: 'OTHER' }],
      ['FreezeMilestone', SUPPORT, { reason: 'again' }],
    ] as const)
      expect(await failure(cmd(method, who, m.id, fields))).toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        reason: 'MILESTONE_FROZEN',
      });
    // Support staff read any milestone, and find the frozen ones by status.
    expect((await t.client.m('GetMilestone', SUPPORT, { milestone_id: m.id })).milestone.status).toBe('FROZEN');
    // Lists come from the read model: once the ledger worker has projected the freeze.
    await ledgerCaughtUp(t.engine);
    const listed = await t.client.m('ListMilestones', p.emp, { direction: 'OUTGOING', statuses: ['FROZEN'] });
    expect(listed.milestones.map((x: { id: string }) => x.id)).toEqual([m.id]);
    // The review window would have ended 45 minutes on: nothing fires while frozen.
    await ledgerCaughtUp(t.engine);
    clock.advance(2 * 60 * MINUTE);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    expect((await t.client.m('GetMilestone', p.emp, { milestone_id: m.id })).milestone.status).toBe('FROZEN');
    expect(await failure(cmd('UnfreezeMilestone', p.fl, m.id))).toMatchObject({ reason: 'NOT_SUPPORT' });
    const back = await cmd('UnfreezeMilestone', SUPPORT, m.id, { reason: 'deposit cleared' });
    expect(back.milestone).toMatchObject({ status: 'RELEASE_REQUESTED', held: usd('30.00'), freeze: null });
    // Exactly what was left at the freeze (the window's end less the freeze), from the unfreeze on.
    const msOf = (ts: { seconds: string; nanos: number }) => Number(ts.seconds) * 1000 + Math.round(ts.nanos / 1e6);
    const at = (type: string) => msOf(back.milestone.history.find((h: { type: string }) => h.type === type).at);
    const left = at('release_requested') + 60 * MINUTE - at('frozen');
    expect(Math.abs(left - 45 * MINUTE)).toBeLessThan(1_000);
    expect(msOf(back.milestone.auto_release_at)).toBe(at('unfrozen') + left);
    expect(back.milestone.history.slice(-2).map((h: { type: string; actor_id: string }) => [h.type, h.actor_id])).toEqual([
      ['frozen', SUPPORT.id],
      ['unfrozen', SUPPORT.id],
    ]);
    expect(await failure(cmd('UnfreezeMilestone', SUPPORT, m.id))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
    await ledgerCaughtUp(t.engine);
    clock.advance(44 * MINUTE);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    clock.advance(2 * MINUTE);
    await eventually(async () => {
      await t.engine.milestones!.fireDueTimers();
      expect((await t.client.m('GetMilestone', p.emp, { milestone_id: m.id })).milestone.status).toBe('RELEASED');
    });
    await expectBalance(t.client, p.fl, { available: '30.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '0.00', held: '0.00', incoming: '0.00' });
  });

  it('a dispute frozen in arbitration: the arbiter waits; after the unfreeze it decides', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '20.00');
    const m = (
      await t.client.m('CreateMilestone', p.emp, {
        project_id: p.project,
        freelancer_id: p.fl,
        amount: usd('20.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await cmd('OpenDispute', p.fl, m.id, { reason: 'unpaid', claimed_amount: usd('20.00') });
    await cmd('ProposeSettlement', p.emp, m.id, { freelancer_amount: usd('5.00') });
    clock.advance(3 * 24 * 60 * MINUTE + 1000);
    expect((await cmd('EscalateDispute', p.fl, m.id)).milestone.dispute.stage).toBe('ARBITRATION');
    await cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'identity check' });
    const arbiter = { id: 'arb-f', roles: ['arbiter'] };
    expect(await failure(cmd('ResolveDispute', arbiter, m.id, { freelancer_amount: usd('10.00') }))).toMatchObject({
      reason: 'MILESTONE_FROZEN',
    });
    expect(await failure(cmd('AcceptSettlement', p.fl, m.id))).toMatchObject({ reason: 'MILESTONE_FROZEN' });
    const back = await cmd('UnfreezeMilestone', SUPPORT, m.id, { reason: 'ok' });
    expect(back.milestone).toMatchObject({ status: 'DISPUTED', dispute: { stage: 'ARBITRATION' } });
    const resolved = await cmd('ResolveDispute', arbiter, m.id, { freelancer_amount: usd('10.00') });
    expect(resolved.milestone).toMatchObject({ status: 'RESOLVED', released: usd('10.00'), returned: usd('10.00') });
    await expectBalance(t.client, p.fl, { available: '10.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, p.emp, { available: '10.00', held: '0.00', incoming: '0.00' });
  });

  it('a milestone with a saga under way, or with nothing held, is not frozen', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '5.00');
    const m = (
      await t.client.m('CreateMilestone', p.emp, {
        project_id: p.project,
        freelancer_id: p.fl,
        amount: usd('5.00'),
        idempotency_key: key(),
      })
    ).milestone;
    await cmd('ReleaseMilestone', p.emp, m.id);
    expect(await failure(cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'late' }))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
  });

  it('a milestone frozen at the event limit can always be unfrozen: the money never stays frozen', async () => {
    const p = parties();
    await deposit(t.client, p.emp, '10.00');
    const m = (
      await t.client.m('CreateMilestone', p.emp, {
        project_id: p.project,
        freelancer_id: p.fl,
        amount: usd('10.00'),
        idempotency_key: key(),
      })
    ).milestone;
    // created, then 198 partial releases: 199 events; the freeze is the 200th.
    for (let i = 0; i < 198; i++) await cmd('ReleaseMilestone', p.emp, m.id, { amount: usd('0.01') });
    expect((await cmd('FreezeMilestone', SUPPORT, m.id, { reason: 'limit' })).milestone).toMatchObject({ status: 'FROZEN', version: 200 });
    const back = await cmd('UnfreezeMilestone', SUPPORT, m.id, { reason: 'ok' });
    expect(back.milestone).toMatchObject({ status: 'FUNDED', version: 201 });
    // Past the limit only a final step: the rest is released.
    expect(await failure(cmd('RequestRelease', p.fl, m.id))).toMatchObject({ reason: 'EVENT_LIMIT' });
    expect((await cmd('ReleaseMilestone', p.emp, m.id)).milestone).toMatchObject({ status: 'RELEASED', released: usd('10.00') });
    await expectBalance(t.client, p.fl, { available: '10.00', held: '0.00', incoming: '0.00' });
  });

  it('leaves the ledger sound', async () => {
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });
});
