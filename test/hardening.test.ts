import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ENTITY_EVENTS_MAX } from '../src/runtime/actor.js';
import { failure, PAYMENTS, usd } from './helpers/client.js';
import { eventually, startEngine, useEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';

const t = useEngine();

describe('hostile requests that once could stall or strand money', () => {
  it('control characters in text are refused, so the ledger never meets them', async () => {
    await deposit(t.client, 'emp-nul', '10.00');
    for (const description of ['a\u0000b', 'bell\u0007', 'esc\u001b[31m']) {
      const err = await failure(
        t.client.m('CreateMilestone', 'emp-nul', { project_id: 'p-nul', freelancer_id: 'fl-nul', amount: usd('1.00'), description, idempotency_key: key() }),
      );
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'TEXT_INVALID' });
    }
    // Multi-line text is fine, and the ledger goes on.
    const ok = await t.client.m('CreateMilestone', 'emp-nul', { project_id: 'p-nul', freelancer_id: 'fl-nul', amount: usd('1.00'), description: 'line 1\r\nline 2\ttab', idempotency_key: key() });
    expect(ok.milestone.status).toBe('FUNDED');
  });

  it('a client key that looks like a saga step is just a key', async () => {
    await deposit(t.client, 'emp-key', '20.00');
    const r = await t.client.m('CreateMilestone', 'emp-key', { project_id: 'p-key', freelancer_id: 'fl-key', amount: usd('10.00'), idempotency_key: 'funding-outcome' });
    expect(r.milestone.status).toBe('FUNDED');
    const again = await t.client.m('CreateMilestone', 'emp-key', { project_id: 'p-key', freelancer_id: 'fl-key', amount: usd('10.00'), idempotency_key: 'system:funding-outcome' });
    expect(again.milestone.status).toBe('FUNDED');
    const released = await t.client.m('ReleaseMilestone', 'emp-key', { milestone_id: again.milestone.id, idempotency_key: 'funding-outcome' });
    expect(released.milestone.status).toBe('RELEASED');
  });

  it("a user's refused withdrawal does not claim a reference the payments service will use", async () => {
    const ref = key('psp');
    const refused = await failure(t.client.a('Withdraw', 'mallory', { amount: usd('1.00'), external_reference: ref }));
    expect(refused).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    const dep = await t.client.a('Deposit', PAYMENTS, { user_id: 'victim', amount: usd('3.00'), external_reference: ref });
    expect(dep.status).toBe('APPLIED');
    expect(await balance(t.client, 'victim')).toEqual({ available: '3.00', held: '0.00', incoming: '0.00' });
    // Users' withdrawal references are their own too.
    await deposit(t.client, 'alice', '5.00');
    await deposit(t.client, 'bob', '5.00');
    await t.client.a('Withdraw', 'alice', { amount: usd('1.00'), external_reference: 'w-1' });
    await t.client.a('Withdraw', 'bob', { amount: usd('2.00'), external_reference: 'w-1' });
    expect((await balance(t.client, 'alice')).available).toBe('4.00');
    expect((await balance(t.client, 'bob')).available).toBe('3.00');
  });

  it('at the event limit the money held can still be released or returned', async () => {
    await deposit(t.client, 'emp-lim', '10.00');
    const id = await funded(t.client, 'emp-lim', 'fl-lim', '10.00', 'p-lim');
    let version = 2;
    while (version < ENTITY_EVENTS_MAX) {
      const r = await t.client.m('ReleaseMilestone', 'emp-lim', { milestone_id: id, amount: usd('0.01'), idempotency_key: key() });
      version = r.milestone.version;
    }
    const more = await failure(t.client.m('ReleaseMilestone', 'emp-lim', { milestone_id: id, amount: usd('0.01'), idempotency_key: key() }));
    expect(more).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'EVENT_LIMIT' });
    const cancelled = await t.client.m('CancelMilestone', 'fl-lim', { milestone_id: id, reason: 'done', idempotency_key: key() });
    expect(cancelled.milestone.status).toBe('CANCELLED');
    const releasedCents = (ENTITY_EVENTS_MAX - 2) * 1;
    await expectBalance(t.client, 'fl-lim', { available: (releasedCents / 100).toFixed(2), held: '0.00', incoming: '0.00' });
    await expectBalance(t.client, 'emp-lim', { available: ((1000 - releasedCents) / 100).toFixed(2), held: '0.00', incoming: '0.00' });
  });
});

describe('several gateways', () => {
  it('a gateway holding a milestone sees a change made through another one', async () => {
    const other = await startEngine({ namespace: t.namespace, worker: false });
    try {
      await deposit(t.client, 'emp-x', '10.00');
      const id = await funded(t.client, 'emp-x', 'fl-x', '10.00', 'p-x');
      expect((await other.client.m('GetMilestone', 'emp-x', { milestone_id: id })).milestone.status).toBe('FUNDED');
      await t.client.m('ReleaseMilestone', 'emp-x', { milestone_id: id, idempotency_key: key() });
      await eventually(async () => expect((await other.client.m('GetMilestone', 'emp-x', { milestone_id: id })).milestone.status).toBe('RELEASED'), 3_000);
    } finally {
      await other.stop();
    }
  });

  it('a funding saga nobody waits for is finished by the sweep', async () => {
    // A gateway whose create gives up at once: the answer is PENDING_FUNDING.
    const impatient = await startEngine({ namespace: t.namespace, worker: false, env: { ESCROW_FUNDING_WAIT_MS: '0' } });
    try {
      await deposit(t.client, 'emp-s', '10.00');
      const r = await impatient.client.m('CreateMilestone', 'emp-s', { project_id: 'p-s', freelancer_id: 'fl-s', amount: usd('4.00'), idempotency_key: key() });
      expect(['PENDING_FUNDING', 'FUNDED']).toContain(r.milestone.status);
      await impatient.stop();
      // Nobody touches the milestone; the read model still comes to FUNDED.
      await eventually(async () => {
        const { rows } = await t.db.query('SELECT status FROM milestones WHERE milestone_id = $1', [r.milestone.id]);
        expect(rows[0]?.status).toBe('FUNDED');
      }, 15_000);
    } finally {
      await impatient.stop().catch(() => {});
    }
  });
});
