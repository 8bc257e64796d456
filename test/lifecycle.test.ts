import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, useEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';
import type { Reply } from '../src/client.js';

const t = useEngine();

describe('milestone lifecycle', () => {
  it('deposit, create (FUNDED), request release, release: exact balances via GetBalance and in the ledger', async () => {
    const c = t.client;
    await deposit(c, 'emp-a', '100.00');
    await expectBalance(c, 'emp-a', { available: '100.00', held: '0.00', incoming: '0.00' });

    const created = await c.m('CreateMilestone', 'emp-a', {
      project_id: 'proj-a',
      freelancer_id: 'fl-a',
      amount: usd('40.00'),
      description: 'logo',
      idempotency_key: key(),
    });
    expect(created.milestone).toMatchObject({ status: 'FUNDED', employer_id: 'emp-a', freelancer_id: 'fl-a', version: 1 });
    expect(created.milestone.held).toEqual(usd('40.00'));
    const id = created.milestone.id;
    await expectBalance(c, 'emp-a', { available: '60.00', held: '40.00', incoming: '0.00' });
    await expectBalance(c, 'fl-a', { available: '0.00', held: '0.00', incoming: '40.00' });

    const rr = await c.m('RequestRelease', 'fl-a', { milestone_id: id, idempotency_key: key() });
    expect(rr.milestone.status).toBe('RELEASE_REQUESTED');

    const rel = await c.m('ReleaseMilestone', 'emp-a', { milestone_id: id, idempotency_key: key() });
    expect(rel.milestone).toMatchObject({ status: 'RELEASED', held: usd('0.00'), released: usd('40.00'), returned: usd('0.00') });
    await expectBalance(c, 'emp-a', { available: '60.00', held: '0.00', incoming: '0.00' });
    await expectBalance(c, 'fl-a', { available: '40.00', held: '0.00', incoming: '0.00' });

    // The ledger itself: every posting balanced, and the accounts agree with the projection.
    const { rows: legs } = await t.db.query(
      `SELECT p.kind, e.account_id, e.amount::text FROM entries e JOIN postings p USING (event_id)
       WHERE p.milestone_id = $1 ORDER BY p.stream_seq, e.amount`,
      [id],
    );
    // The employer's account actor reserved the money; the milestone's creation moved it into escrow.
    const reservation = legs[1].account_id;
    expect(reservation).toMatch(/^reservation:/);
    expect(legs).toEqual([
      { kind: 'reserve', account_id: 'available:USD:emp-a', amount: '-40.00' },
      { kind: 'reserve', account_id: reservation, amount: '40.00' },
      { kind: 'hold', account_id: reservation, amount: '-40.00' },
      { kind: 'hold', account_id: `escrow:${id}`, amount: '40.00' },
      { kind: 'release', account_id: `escrow:${id}`, amount: '-40.00' },
      { kind: 'release', account_id: 'available:USD:fl-a', amount: '40.00' },
    ]);
    const { rows: accounts } = await t.db.query(
      `SELECT account_id, balance::numeric(30, 2)::text AS balance FROM accounts WHERE account_id = ANY($1) ORDER BY account_id`,
      [['available:USD:emp-a', 'available:USD:fl-a', `escrow:${id}`]],
    );
    expect(accounts).toEqual([
      { account_id: 'available:USD:emp-a', balance: '60.00' },
      { account_id: 'available:USD:fl-a', balance: '40.00' },
      { account_id: `escrow:${id}`, balance: '0.00' },
    ]);

    const got = await c.m('GetMilestone', 'fl-a', { milestone_id: id });
    expect(got.milestone.history.map((h: { type: string }) => h.type)).toEqual(['created', 'release_requested', 'released']);
    const entries = await c.a('ListLedgerEntries', 'fl-a', { user_id: 'fl-a' });
    expect(entries.entries.map((e: Reply) => [e.kind, e.amount.amount])).toEqual([['release', '40.00']]);
  });

  it('partial releases summing to the amount; a release above what is held is refused', async () => {
    const c = t.client;
    await deposit(c, 'emp-b', '50.00');
    const id = await funded(c, 'emp-b', 'fl-b', '30.00', 'proj-b');

    const p1 = await c.m('ReleaseMilestone', 'emp-b', { milestone_id: id, amount: usd('10.00'), idempotency_key: key() });
    expect(p1.milestone).toMatchObject({ status: 'FUNDED', held: usd('20.00'), released: usd('10.00') });
    const tooMuch = await failure(c.m('ReleaseMilestone', 'emp-b', { milestone_id: id, amount: usd('20.01'), idempotency_key: key() }));
    expect(tooMuch).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'AMOUNT_EXCEEDS_HELD' });
    const p2 = await c.m('ReleaseMilestone', 'emp-b', { milestone_id: id, amount: usd('15.50'), idempotency_key: key() });
    expect(p2.milestone).toMatchObject({ status: 'FUNDED', held: usd('4.50'), released: usd('25.50') });
    const p3 = await c.m('ReleaseMilestone', 'emp-b', { milestone_id: id, amount: usd('4.50'), idempotency_key: key() });
    expect(p3.milestone).toMatchObject({ status: 'RELEASED', held: usd('0.00'), released: usd('30.00') });
    const after = await failure(c.m('ReleaseMilestone', 'emp-b', { milestone_id: id, amount: usd('0.01'), idempotency_key: key() }));
    expect(after).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'ILLEGAL_IN_STATUS' });

    await expectBalance(c, 'emp-b', { available: '20.00', held: '0.00', incoming: '0.00' });
    await expectBalance(c, 'fl-b', { available: '30.00', held: '0.00', incoming: '0.00' });
  });

  it('cancel returns what is still held to the employer', async () => {
    const c = t.client;
    await deposit(c, 'emp-c', '25.00');
    const id = await funded(c, 'emp-c', 'fl-c', '25.00', 'proj-c');
    await c.m('ReleaseMilestone', 'emp-c', { milestone_id: id, amount: usd('5.00'), idempotency_key: key() });
    const rc = await c.m('RequestCancellation', 'emp-c', {
      milestone_id: id,
      reason_code: 'NO_LONGER_NEEDED',
      reason: 'no longer needed',
      idempotency_key: key(),
    });
    expect(rc.milestone.status).toBe('CANCELLATION_REQUESTED');
    const cancelled = await c.m('CancelMilestone', 'fl-c', { milestone_id: id, reason: 'agreed', idempotency_key: key() });
    expect(cancelled.milestone).toMatchObject({ status: 'CANCELLED', held: usd('0.00'), released: usd('5.00'), returned: usd('20.00') });
    // The request's code stays with the milestone; the cancel's own text replaces the request's.
    expect(cancelled.milestone).toMatchObject({ cancellation_reason_code: 'NO_LONGER_NEEDED', cancellation_reason: 'agreed' });
    expect(rc.milestone.history.at(-1)).toMatchObject({
      type: 'cancellation_requested',
      reason_code: 'NO_LONGER_NEEDED',
      reason: 'no longer needed',
    });
    await expectBalance(c, 'emp-c', { available: '20.00', held: '0.00', incoming: '0.00' });
    await expectBalance(c, 'fl-c', { available: '5.00', held: '0.00', incoming: '0.00' });
  });

  it('insufficient funds: create is refused with FAILED_PRECONDITION, no hold, nothing posted', async () => {
    const c = t.client;
    await deposit(c, 'emp-d', '10.00');
    const err = await failure(
      c.m('CreateMilestone', 'emp-d', {
        project_id: 'proj-d',
        freelancer_id: 'fl-d',
        amount: usd('10.01'),
        description: '',
        idempotency_key: key(),
      }),
    );
    expect(err).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    expect(await balance(c, 'emp-d')).toEqual({ available: '10.00', held: '0.00', incoming: '0.00' });
    const { rows } = await t.db.query(
      `SELECT count(*)::int AS n FROM entries e JOIN accounts a USING (account_id) WHERE a.owner_id = 'emp-d' AND e.amount < 0`,
    );
    expect(rows[0].n).toBe(0);
    await eventually(async () => {
      const { rows: failed } = await t.db.query(`SELECT status FROM milestones WHERE employer_id = 'emp-d'`);
      expect(failed).toEqual([{ status: 'FUNDING_FAILED' }]);
    });
  });

  it('ListMilestones shows incoming and outgoing milestones of the caller, paged', async () => {
    const c = t.client;
    await deposit(c, 'emp-e', '10.00');
    for (let i = 0; i < 3; i++) await funded(c, 'emp-e', 'fl-e', '1.00', 'proj-e');
    // Lists come from the read model, which follows the log a moment behind.
    await ledgerCaughtUp(t.engine);
    const page1 = await c.m('ListMilestones', 'emp-e', { direction: 'OUTGOING', page_size: 2 });
    expect(page1.milestones).toHaveLength(2);
    expect(page1.next_page_token).not.toBe('');
    const page2 = await c.m('ListMilestones', 'emp-e', { direction: 'OUTGOING', page_size: 2, page_token: page1.next_page_token });
    expect(page2.milestones).toHaveLength(1);
    // The read model follows the log a moment behind.
    await eventually(async () => {
      const incoming = await c.m('ListMilestones', 'fl-e', { direction: 'INCOMING', statuses: ['FUNDED'] });
      expect(incoming.milestones).toHaveLength(3);
    });
    const none = await c.m('ListMilestones', 'fl-e', { direction: 'OUTGOING' });
    expect(none.milestones).toHaveLength(0);
  });

  it('withdraw moves available money out and is refused when funds are short', async () => {
    const c = t.client;
    await deposit(c, 'user-w', '12.00');
    const w = await c.a('Withdraw', 'user-w', { amount: usd('5.00'), external_reference: key('wd') });
    expect(w.status).toBe('APPLIED');
    expect(w.balance.available).toEqual(usd('7.00'));
    const short = await failure(c.a('Withdraw', 'user-w', { amount: usd('7.01'), external_reference: key('wd') }));
    expect(short).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    expect(await balance(c, 'user-w')).toEqual({ available: '7.00', held: '0.00', incoming: '0.00' });
  });
});
