import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, useEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();

async function request(freelancer: string, employer: string, project: string, amount: string, k = key()) {
  return t.client.m('RequestMilestone', freelancer, {
    project_id: project,
    employer_id: employer,
    amount: usd(amount),
    description: 'proposal',
    idempotency_key: k,
  });
}

describe('milestone requests', () => {
  it('the freelancer proposes, the employer accepts: funded from a reservation like a create', async () => {
    const c = t.client;
    await deposit(c, 'emp-r', '50.00');
    await funded(c, 'emp-r', 'fl-r', '10.00', 'proj-r');
    const r = await request('fl-r', 'emp-r', 'proj-r', '15.00');
    expect(r.milestone).toMatchObject({
      status: 'REQUESTED',
      employer_id: 'emp-r',
      freelancer_id: 'fl-r',
      held: usd('0.00'),
      amount: usd('15.00'),
    });
    await expectBalance(c, 'emp-r', { available: '40.00', held: '10.00', incoming: '0.00' });
    // Both see it: the employer's outgoing list, the freelancer's incoming list.
    await eventually(async () => {
      const out = await c.m('ListMilestones', 'emp-r', { direction: 'OUTGOING', statuses: ['REQUESTED'] });
      expect(out.milestones.map((m: { id: string }) => m.id)).toEqual([r.milestone.id]);
      const inc = await c.m('ListMilestones', 'fl-r', { direction: 'INCOMING', statuses: ['REQUESTED'] });
      expect(inc.milestones).toHaveLength(1);
    });
    const k = key();
    const accepted = await c.m('AcceptMilestoneRequest', 'emp-r', { milestone_id: r.milestone.id, idempotency_key: k });
    expect(accepted.milestone).toMatchObject({ status: 'FUNDED', held: usd('15.00') });
    const again = await c.m('AcceptMilestoneRequest', 'emp-r', { milestone_id: r.milestone.id, idempotency_key: k });
    expect(again.milestone).toMatchObject({ status: 'FUNDED', version: accepted.milestone.version });
    await expectBalance(c, 'emp-r', { available: '25.00', held: '25.00', incoming: '0.00' });
    await expectBalance(c, 'fl-r', { available: '0.00', held: '0.00', incoming: '25.00' });
    const released = await c.m('ReleaseMilestone', 'emp-r', { milestone_id: r.milestone.id, idempotency_key: key() });
    expect(released.milestone.status).toBe('RELEASED');
    await expectBalance(c, 'fl-r', { available: '15.00', held: '0.00', incoming: '10.00' });
    expect(released.milestone.history.map((h: { type: string }) => h.type)).toEqual(['requested', 'request_accepted', 'released']);
  });

  it('accepting with too little money is FAILED_PRECONDITION INSUFFICIENT_FUNDS and holds nothing', async () => {
    const c = t.client;
    await deposit(c, 'emp-p', '5.00');
    await funded(c, 'emp-p', 'fl-p', '1.00', 'proj-p');
    const r = await request('fl-p', 'emp-p', 'proj-p', '9.00');
    const err = await failure(c.m('AcceptMilestoneRequest', 'emp-p', { milestone_id: r.milestone.id, idempotency_key: key() }));
    expect(err).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    expect(await balance(c, 'emp-p')).toEqual({ available: '4.00', held: '1.00', incoming: '0.00' });
    expect((await c.m('GetMilestone', 'fl-p', { milestone_id: r.milestone.id })).milestone.status).toBe('FUNDING_FAILED');
  });

  it('the employer rejects, or the freelancer withdraws: final, no money moved', async () => {
    const c = t.client;
    await deposit(c, 'emp-w', '5.00');
    await funded(c, 'emp-w', 'fl-w', '5.00', 'proj-w');
    const a = await request('fl-w', 'emp-w', 'proj-w', '3.00');
    const rejected = await c.m('RejectMilestoneRequest', 'emp-w', { milestone_id: a.milestone.id, idempotency_key: key() });
    expect(rejected.milestone.status).toBe('REQUEST_REJECTED');
    const b = await request('fl-w', 'emp-w', 'proj-w', '4.00');
    const withdrawn = await c.m('WithdrawMilestoneRequest', 'fl-w', { milestone_id: b.milestone.id, idempotency_key: key() });
    expect(withdrawn.milestone.status).toBe('REQUEST_WITHDRAWN');
    for (const id of [a.milestone.id, b.milestone.id]) {
      const late = await failure(c.m('AcceptMilestoneRequest', 'emp-w', { milestone_id: id, idempotency_key: key() }));
      expect(late).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'ILLEGAL_IN_STATUS' });
    }
    await ledgerCaughtUp(t.engine);
    expect(await balance(c, 'emp-w')).toEqual({ available: '0.00', held: '5.00', incoming: '0.00' });
  });

  it('wrong parties are refused', async () => {
    const c = t.client;
    await deposit(c, 'emp-x', '5.00');
    await funded(c, 'emp-x', 'fl-x', '1.00', 'proj-x');
    const cases: [string, object, grpc.status, string][] = [
      ['stranger', { project_id: 'proj-x', employer_id: 'emp-x' }, grpc.status.PERMISSION_DENIED, 'NOT_FREELANCER'],
      ['emp-x', { project_id: 'proj-x', employer_id: 'emp-x' }, grpc.status.PERMISSION_DENIED, 'NOT_FREELANCER'],
      ['fl-x', { project_id: 'proj-x', employer_id: 'someone-else' }, grpc.status.FAILED_PRECONDITION, 'NOT_PROJECT_EMPLOYER'],
      ['fl-x', { project_id: 'no-such-project', employer_id: 'emp-x' }, grpc.status.NOT_FOUND, 'PROJECT_NOT_FOUND'],
    ];
    for (const [who, req, code, reason] of cases) {
      const err = await failure(c.m('RequestMilestone', who, { ...req, amount: usd('1.00'), idempotency_key: key() }));
      expect({ who, req, code: err.code, reason: err.reason }).toEqual({ who, req, code, reason });
    }
    const r = await request('fl-x', 'emp-x', 'proj-x', '1.00');
    for (const [method, who, reason] of [
      ['AcceptMilestoneRequest', 'fl-x', 'NOT_EMPLOYER'],
      ['AcceptMilestoneRequest', 'stranger', 'NOT_EMPLOYER'],
      ['RejectMilestoneRequest', 'fl-x', 'NOT_EMPLOYER'],
      ['WithdrawMilestoneRequest', 'emp-x', 'NOT_FREELANCER'],
    ] as const) {
      const err = await failure(c.m(method, who, { milestone_id: r.milestone.id, idempotency_key: key() }));
      expect({ method, who, code: err.code, reason: err.reason }).toEqual({ method, who, code: grpc.status.PERMISSION_DENIED, reason });
    }
    // A stranger with money of its own: refused before anything is reserved from its balance.
    await deposit(c, 'rich-x', '5.00');
    const err = await failure(c.m('AcceptMilestoneRequest', 'rich-x', { milestone_id: r.milestone.id, idempotency_key: key() }));
    expect(err.reason).toBe('NOT_EMPLOYER');
    expect(await balance(c, 'rich-x')).toEqual({ available: '5.00', held: '0.00', incoming: '0.00' });
  });
});

describe('cancellation requests', () => {
  it('the freelancer rejects a cancellation request: back to the previous status, money still held', async () => {
    const c = t.client;
    await deposit(c, 'emp-c', '20.00');
    const a = await funded(c, 'emp-c', 'fl-c', '10.00', 'proj-c');
    await c.m('RequestCancellation', 'emp-c', { milestone_id: a, reason_code: 'NO_LONGER_NEEDED', idempotency_key: key() });
    const back = await c.m('RejectCancellation', 'fl-c', { milestone_id: a, idempotency_key: key() });
    expect(back.milestone).toMatchObject({ status: 'FUNDED', held: usd('10.00') });

    const b = await funded(c, 'emp-c', 'fl-c', '10.00', 'proj-c');
    await c.m('RequestRelease', 'fl-c', { milestone_id: b, idempotency_key: key() });
    await c.m('RequestCancellation', 'emp-c', {
      milestone_id: b,
      reason_code: 'MISSED_DEADLINE',
      reason: 'two weeks late',
      idempotency_key: key(),
    });
    const wrong = await failure(c.m('RejectCancellation', 'emp-c', { milestone_id: b, idempotency_key: key() }));
    expect(wrong).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'NOT_FREELANCER' });
    const back2 = await c.m('RejectCancellation', 'fl-c', { milestone_id: b, idempotency_key: key() });
    expect(back2.milestone.status).toBe('RELEASE_REQUESTED');
    const twice = await failure(c.m('RejectCancellation', 'fl-c', { milestone_id: b, idempotency_key: key() }));
    expect(twice).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'ILLEGAL_IN_STATUS' });
    await expectBalance(c, 'emp-c', { available: '0.00', held: '20.00', incoming: '0.00' });
    await expectLedgerSound(t.engine);
  });
});
