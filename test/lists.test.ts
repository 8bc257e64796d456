import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, TestClock, useEngine } from './helpers/engine.js';
import { deposit, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';
import type { Reply } from '../src/client.js';

/** ListMilestones: rows with every field GetMilestone has but the history, sorting, time ranges; UpdateMilestoneDescription. */
const clock = new TestClock();
const t = useEngine({ now: clock.now, env: { ESCROW_TIMER_SCAN_MS: '3600000' } });
const SUPPORT = { id: 'support-l', roles: ['support'] };
const MINUTE = 60_000;

const cmd = (method: string, who: string | object, id: string, fields: object = {}) =>
  t.client.m(method, who as never, { milestone_id: id, idempotency_key: key(), ...fields });

async function create(emp: string, fl: string, project: string, amount: string, extra: object = {}) {
  return (
    await t.client.m('CreateMilestone', emp, {
      project_id: project,
      freelancer_id: fl,
      amount: usd(amount),
      idempotency_key: key(),
      ...extra,
    })
  ).milestone;
}

const list = (who: string, fields: object = {}) => t.client.m('ListMilestones', who, { direction: 'OUTGOING', ...fields });

describe('list rows', () => {
  it('carry every field GetMilestone has but the history, in every kind of state', async () => {
    const [emp, fl, project] = ['emp-l1', 'fl-l1', 'proj-l1'];
    await deposit(t.client, emp, '100.00');
    const plain = await create(emp, fl, project, '10.00', {
      milestone_reason: 'MILESTONE_REASON_PARTIAL_PAYMENT',
      description: 'first half',
    });
    const windowed = await create(emp, fl, project, '10.00', { review_window_seconds: 3600 });
    await cmd('RequestRelease', fl, windowed.id);
    const cancelAsked = await create(emp, fl, project, '10.00');
    await cmd('RequestCancellation', emp, cancelAsked.id, { reason_code: 'MISSED_DEADLINE', reason: 'two weeks late' });
    const disputed = await create(emp, fl, project, '10.00');
    await cmd('OpenDispute', fl, disputed.id, { reason: 'unpaid', claimed_amount: usd('6.00') });
    await cmd('ProposeSettlement', emp, disputed.id, { freelancer_amount: usd('2.00') });
    const frozen = await create(emp, fl, project, '10.00');
    await cmd('FreezeMilestone', SUPPORT, frozen.id, { reason: 'identity check' });
    const failed = await t.client
      .m('CreateMilestone', emp, { project_id: project, freelancer_id: fl, amount: usd('1000.00'), idempotency_key: key() })
      .catch(() => null);
    expect(failed).toBeNull();
    const cancelled = await create(emp, fl, project, '10.00');
    await cmd('CancelMilestone', fl, cancelled.id, { reason_code: 'NO_LONGER_NEEDED', reason: 'scope changed' });
    await ledgerCaughtUp(t.engine);
    await eventually(async () => {
      const rows: Reply[] = (await list(emp, { project_id: project })).milestones;
      expect(rows).toHaveLength(7);
      for (const row of rows) {
        const got = (await t.client.m('GetMilestone', emp, { milestone_id: row.id })).milestone;
        expect(row).toEqual({ ...got, history: [] });
      }
      const byId = new Map(rows.map((r) => [r.id, r]));
      expect(byId.get(plain.id)).toMatchObject({ milestone_reason: 'MILESTONE_REASON_PARTIAL_PAYMENT', description: 'first half' });
      expect(byId.get(windowed.id)?.auto_release_at).toBeTruthy();
      expect(byId.get(cancelAsked.id)).toMatchObject({
        cancellation_reason_code: 'MISSED_DEADLINE',
        cancellation_reason: 'two weeks late',
      });
      expect(byId.get(disputed.id)?.dispute).toMatchObject({ stage: 'NEGOTIATION', proposed_freelancer_amount: usd('2.00') });
      expect(byId.get(frozen.id)).toMatchObject({ status: 'FROZEN', freeze: { reason: 'identity check' } });
      expect(rows.find((r) => r.status === 'FUNDING_FAILED')).toMatchObject({ funding_failure_reason: 'INSUFFICIENT_FUNDS' });
    });
  });

  it('a row the read model wrote before it kept contexts is read from the log', async () => {
    const [emp, fl, project] = ['emp-l2', 'fl-l2', 'proj-l2'];
    await deposit(t.client, emp, '10.00');
    const m = await create(emp, fl, project, '10.00', { description: 'legacy' });
    await cmd('RequestCancellation', emp, m.id, { reason_code: 'OTHER', reason: 'why' });
    await ledgerCaughtUp(t.engine);
    // As migration 009 found the rows of an earlier version: no state, no context.
    await t.db.query('UPDATE milestones SET state = NULL, context = NULL WHERE milestone_id = $1', [m.id]);
    const row = (await list(emp, { project_id: project })).milestones[0];
    const got = (await t.client.m('GetMilestone', emp, { milestone_id: m.id })).milestone;
    expect(row).toEqual({ ...got, history: [] });
    expect(row).toMatchObject({ cancellation_reason: 'why', description: 'legacy' });
    // Written back: the next list reads the row alone.
    const kept = await t.db.query<{ state: string; kept: boolean }>(
      'SELECT state, context IS NOT NULL AS kept FROM milestones WHERE milestone_id = $1',
      [m.id],
    );
    expect(kept.rows[0]).toEqual({ state: 'cancellationRequested', kept: true });
    expect((await list(emp, { project_id: project })).milestones[0]).toEqual(row);
  });

  it('milestone_reason is checked on create and request', async () => {
    const err = await failure(
      t.client.m('CreateMilestone', 'emp-l3', {
        project_id: 'proj-l3',
        freelancer_id: 'fl-l3',
        amount: usd('1.00'),
        // A number no MilestoneReason has (a name the client does not know would be sent as 0).
        milestone_reason: 99,
        idempotency_key: key(),
      }),
    );
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'REASON_CODE_INVALID' });
    await t.client.m('AwardProject', 'emp-l3', { project_id: 'proj-l3', freelancer_id: 'fl-l3', idempotency_key: key() });
    const r = await t.client.m('RequestMilestone', 'fl-l3', {
      project_id: 'proj-l3',
      employer_id: 'emp-l3',
      amount: usd('1.00'),
      milestone_reason: 'MILESTONE_REASON_TASK_DESCRIPTION',
      idempotency_key: key(),
    });
    expect(r.milestone).toMatchObject({ status: 'REQUESTED', milestone_reason: 'MILESTONE_REASON_TASK_DESCRIPTION' });
  });
});

describe('UpdateMilestoneDescription', () => {
  it('the employer corrects it while money is held; the history keeps both; not in a dispute, not by the freelancer', async () => {
    const [emp, fl, project] = ['emp-l4', 'fl-l4', 'proj-l4'];
    await deposit(t.client, emp, '20.00');
    const m = await create(emp, fl, project, '10.00', { description: 'one page' });
    expect(await failure(cmd('UpdateMilestoneDescription', fl, m.id, { description: 'x' }))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_EMPLOYER',
    });
    const updated = await cmd('UpdateMilestoneDescription', emp, m.id, { description: 'two pages' });
    expect(updated.milestone).toMatchObject({ status: 'FUNDED', description: 'two pages', held: usd('10.00') });
    expect(updated.milestone.history.at(-1)).toMatchObject({ type: 'description_updated', actor_id: emp });
    const events = await t.client.m('GetMilestone', emp, { milestone_id: m.id });
    expect(events.milestone.history.map((h: Reply) => h.type)).toEqual(['created', 'description_updated']);
    await ledgerCaughtUp(t.engine);
    await eventually(async () => expect((await list(emp, { project_id: project })).milestones[0].description).toBe('two pages'));
    const d = await create(emp, fl, project, '10.00', { description: 'logo' });
    await cmd('OpenDispute', emp, d.id, { reason: 'late', claimed_amount: usd('10.00') });
    expect(await failure(cmd('UpdateMilestoneDescription', emp, d.id, { description: 'logo and site' }))).toMatchObject({
      reason: 'ILLEGAL_IN_STATUS',
    });
    const text = await failure(cmd('UpdateMilestoneDescription', emp, m.id, { description: 'x'.repeat(5000) }));
    expect(text).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'TEXT_TOO_LONG' });
  });
});

describe('sorting and time ranges', () => {
  it('orders by creation or last change, either way, filters by half-open ranges, and pages within them', async () => {
    const [emp, fl, project] = ['emp-l5', 'fl-l5', 'proj-l5'];
    await deposit(t.client, emp, '30.00');
    const t0 = clock.now().getTime();
    const a = await create(emp, fl, project, '10.00');
    clock.advance(10 * MINUTE);
    const b = await create(emp, fl, project, '10.00');
    clock.advance(10 * MINUTE);
    const c = await create(emp, fl, project, '10.00');
    clock.advance(10 * MINUTE);
    // The oldest changes last.
    await cmd('RequestRelease', fl, a.id);
    await ledgerCaughtUp(t.engine);
    const ids = async (fields: object) => ((await list(emp, { project_id: project, ...fields })).milestones as Reply[]).map((m) => m.id);
    await eventually(async () => expect(await ids({ sort: 'MILESTONE_SORT_UPDATED_DESC' })).toEqual([a.id, c.id, b.id]));
    expect(await ids({})).toEqual([c.id, b.id, a.id]);
    expect(await ids({ sort: 'MILESTONE_SORT_CREATED_ASC' })).toEqual([a.id, b.id, c.id]);
    expect(await ids({ sort: 'MILESTONE_SORT_UPDATED_ASC' })).toEqual([b.id, c.id, a.id]);
    const at = (ms: number) => ({ seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
    // b was created at t0 + 10 min (and a moment): from t0 + 5 min, before t0 + 15 min.
    expect(await ids({ created_from: at(t0 + 5 * MINUTE), created_before: at(t0 + 15 * MINUTE) })).toEqual([b.id]);
    expect(await ids({ updated_from: at(t0 + 25 * MINUTE) })).toEqual([a.id]);
    // Pages of one, in the order asked for: each once.
    const seen: string[] = [];
    let token = '';
    do {
      const page = await list(emp, { project_id: project, sort: 'MILESTONE_SORT_CREATED_ASC', page_size: 1, page_token: token });
      seen.push(...page.milestones.map((m: Reply) => m.id));
      token = page.next_page_token;
      if (seen.length === 1) {
        // A token serves the order it was issued for.
        expect(
          await failure(list(emp, { project_id: project, sort: 'MILESTONE_SORT_CREATED_DESC', page_size: 1, page_token: token })),
        ).toMatchObject({
          reason: 'PAGE_TOKEN_INVALID',
        });
      }
    } while (token);
    expect(seen).toEqual([a.id, b.id, c.id]);
  });

  it('refuses a sort or a range it cannot serve', async () => {
    expect(await failure(list('emp-l6', { sort: 99 }))).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      reason: 'SORT_INVALID',
    });
    const now = { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 };
    expect(await failure(list('emp-l6', { created_from: now, created_before: now }))).toMatchObject({ reason: 'TIME_RANGE_INVALID' });
    expect(await failure(list('emp-l6', { updated_before: { seconds: '999999999999', nanos: 0 } }))).toMatchObject({
      reason: 'TIME_INVALID',
    });
  });
});
