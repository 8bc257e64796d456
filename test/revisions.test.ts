import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, TestClock, useEngine } from './helpers/engine.js';
import { deposit, expectBalance, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

/** RequestChanges after a release request, and a review window chosen when a request is accepted: through the gRPC API. */
const clock = new TestClock();
const t = useEngine({ now: clock.now, env: { ESCROW_TIMER_SCAN_MS: '3600000' } });
const MINUTE = 60_000;

const cmd = (method: string, who: string, id: string, fields: object = {}, k = key()) =>
  t.client.m(method, who, { milestone_id: id, idempotency_key: k, ...fields });

describe('revisions', () => {
  it('an accepted request gets a review window; changes stop it; the next release request starts a whole one', async () => {
    const [emp, fl, project] = ['emp-rv1', 'fl-rv1', 'proj-rv1'];
    await t.client.m('AwardProject', emp, { project_id: project, freelancer_id: fl, idempotency_key: key() });
    const requested = await t.client.m('RequestMilestone', fl, {
      project_id: project,
      employer_id: emp,
      amount: usd('25.00'),
      description: 'landing page',
      idempotency_key: key(),
    });
    const id = requested.milestone.id;
    await deposit(t.client, emp, '25.00');
    expect(await failure(cmd('AcceptMilestoneRequest', emp, id, { review_window_seconds: 91 * 86_400 }))).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      reason: 'REVIEW_WINDOW_INVALID',
    });
    await expectBalance(t.client, emp, { available: '25.00', held: '0.00', incoming: '0.00' });
    const k = key();
    const accepted = await cmd('AcceptMilestoneRequest', emp, id, { review_window_seconds: 3600 }, k);
    expect(accepted.milestone).toMatchObject({ status: 'FUNDED', held: usd('25.00'), review_window_seconds: 3600 });
    // The same key with another window is another request.
    expect(await failure(cmd('AcceptMilestoneRequest', emp, id, { review_window_seconds: 60 }, k))).toMatchObject({
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    expect(await failure(cmd('RequestChanges', emp, id, { reason: 'x' }))).toMatchObject({ reason: 'ILLEGAL_IN_STATUS' });
    const asked = await cmd('RequestRelease', fl, id);
    expect(asked.milestone.auto_release_at).toBeTruthy();
    clock.advance(50 * MINUTE);
    expect(await failure(cmd('RequestChanges', fl, id, { reason: 'x' }))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_EMPLOYER',
    });
    expect(await failure(cmd('RequestChanges', emp, id))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'FIELD_REQUIRED' });
    const changes = await cmd('RequestChanges', emp, id, { reason: 'the footer overlaps on mobile' });
    expect(changes.milestone).toMatchObject({ status: 'FUNDED', held: usd('25.00'), auto_release_at: null });
    expect(changes.milestone.history.at(-1)).toMatchObject({
      type: 'changes_requested',
      actor_id: emp,
      reason: 'the footer overlaps on mobile',
    });
    // The old window's end passes: nothing fires.
    await ledgerCaughtUp(t.engine);
    clock.advance(2 * 60 * MINUTE);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    const again = await cmd('RequestRelease', fl, id);
    expect(again.milestone.status).toBe('RELEASE_REQUESTED');
    await ledgerCaughtUp(t.engine);
    clock.advance(59 * MINUTE);
    expect(await t.engine.milestones!.fireDueTimers()).toBe(0);
    clock.advance(2 * MINUTE);
    await eventually(async () => {
      await t.engine.milestones!.fireDueTimers();
      const got = (await t.client.m('GetMilestone', emp, { milestone_id: id })).milestone;
      expect(got).toMatchObject({ status: 'RELEASED', released: usd('25.00') });
      expect(got.history.at(-1)).toMatchObject({ type: 'released', actor_id: 'system', outcome: 'automatic' });
    });
    await expectBalance(t.client, fl, { available: '25.00', held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, emp, { available: '0.00', held: '0.00', incoming: '0.00' });
  });

  it('leaves the ledger sound', async () => {
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });
});
