import * as grpc from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { ENTITY_EVENTS_MAX } from '../src/runtime/actor.js';
import { failure, PAYMENTS, TEST_SECRET, usd } from './helpers/client.js';
import { eventually, startEngine, useEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();

describe('hostile requests that once could stall or strand money', () => {
  it('control characters in text are refused, so the ledger never meets them', async () => {
    await deposit(t.client, 'emp-nul', '10.00');
    for (const description of ['a\u0000b', 'bell\u0007', 'esc\u001b[31m']) {
      const err = await failure(
        t.client.m('CreateMilestone', 'emp-nul', {
          project_id: 'p-nul',
          freelancer_id: 'fl-nul',
          amount: usd('1.00'),
          description,
          idempotency_key: key(),
        }),
      );
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'TEXT_INVALID' });
    }
    // Multi-line text is fine, and the ledger goes on.
    const ok = await t.client.m('CreateMilestone', 'emp-nul', {
      project_id: 'p-nul',
      freelancer_id: 'fl-nul',
      amount: usd('1.00'),
      description: 'line 1\r\nline 2\ttab',
      idempotency_key: key(),
    });
    expect(ok.milestone.status).toBe('FUNDED');
  });

  it('a client key that looks like a saga step is just a key', async () => {
    await deposit(t.client, 'emp-key', '20.00');
    const r = await t.client.m('CreateMilestone', 'emp-key', {
      project_id: 'p-key',
      freelancer_id: 'fl-key',
      amount: usd('10.00'),
      idempotency_key: 'funding-outcome',
    });
    expect(r.milestone.status).toBe('FUNDED');
    const again = await t.client.m('CreateMilestone', 'emp-key', {
      project_id: 'p-key',
      freelancer_id: 'fl-key',
      amount: usd('10.00'),
      idempotency_key: 'system:funding-outcome',
    });
    expect(again.milestone.status).toBe('FUNDED');
    const released = await t.client.m('ReleaseMilestone', 'emp-key', {
      milestone_id: again.milestone.id,
      idempotency_key: 'funding-outcome',
    });
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
    let version = 1;
    while (version < ENTITY_EVENTS_MAX) {
      const r = await t.client.m('ReleaseMilestone', 'emp-lim', { milestone_id: id, amount: usd('0.01'), idempotency_key: key() });
      version = r.milestone.version;
    }
    const more = await failure(
      t.client.m('ReleaseMilestone', 'emp-lim', { milestone_id: id, amount: usd('0.01'), idempotency_key: key() }),
    );
    expect(more).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'EVENT_LIMIT' });
    const cancelled = await t.client.m('CancelMilestone', 'fl-lim', { milestone_id: id, reason: 'done', idempotency_key: key() });
    expect(cancelled.milestone.status).toBe('CANCELLED');
    const releasedCents = (ENTITY_EVENTS_MAX - 1) * 1;
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
      await eventually(
        async () => expect((await other.client.m('GetMilestone', 'emp-x', { milestone_id: id })).milestone.status).toBe('RELEASED'),
        3_000,
      );
    } finally {
      await other.stop();
    }
  });

  it('a funding saga nobody waits for is finished by the sweep', async () => {
    // A gateway whose create gives up at once: the answer is PENDING_FUNDING.
    const impatient = await startEngine({ namespace: t.namespace, worker: false, env: { ESCROW_FUNDING_WAIT_MS: '0' } });
    try {
      await deposit(t.client, 'emp-s', '10.00');
      const r = await impatient.client.m('CreateMilestone', 'emp-s', {
        project_id: 'p-s',
        freelancer_id: 'fl-s',
        amount: usd('4.00'),
        idempotency_key: key(),
      });
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

describe('input that once meant more than it said', () => {
  const sign = (claims: Record<string, unknown>, sub = 'emp-tok') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).sign(new TextEncoder().encode(TEST_SECRET));
  const now = () => Math.floor(Date.now() / 1000);

  it('a set-but-empty Money is INVALID_ARGUMENT and changes nothing; only an absent one means "all"', async () => {
    await deposit(t.client, 'emp-empty', '10.00');
    const id = await funded(t.client, 'emp-empty', 'fl-empty', '10.00', 'p-empty');
    for (const amount of [{ currency_code: '', amount: '' }, {}]) {
      const err = await failure(t.client.m('ReleaseMilestone', 'emp-empty', { milestone_id: id, amount, idempotency_key: key() }));
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'AMOUNT_EMPTY' });
    }
    const m = await t.client.m('GetMilestone', 'emp-empty', { milestone_id: id });
    expect(m.milestone).toMatchObject({ status: 'FUNDED', version: 1, held: usd('10.00') });
    await expectBalance(t.client, 'fl-empty', { available: '0.00', held: '0.00', incoming: '10.00' });

    // A settlement accepted with an empty expectation does not skip the proposal check.
    await t.client.m('OpenDispute', 'fl-empty', {
      milestone_id: id,
      reason: 'not paid',
      claimed_amount: usd('10.00'),
      idempotency_key: key(),
    });
    await t.client.m('ProposeSettlement', 'emp-empty', { milestone_id: id, freelancer_amount: usd('2.00'), idempotency_key: key() });
    const accept = await failure(
      t.client.m('AcceptSettlement', 'fl-empty', {
        milestone_id: id,
        freelancer_amount: { currency_code: '', amount: '' },
        idempotency_key: key(),
      }),
    );
    expect(accept).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'AMOUNT_EMPTY' });
    expect((await t.client.m('GetMilestone', 'fl-empty', { milestone_id: id })).milestone.status).toBe('DISPUTED');

    // Absent still means "all" for a release.
    await deposit(t.client, 'emp-empty', '5.00');
    const all = await funded(t.client, 'emp-empty', 'fl-empty', '5.00', 'p-empty');
    const released = await t.client.m('ReleaseMilestone', 'emp-empty', { milestone_id: all, idempotency_key: key() });
    expect(released.milestone).toMatchObject({ status: 'RELEASED', released: usd('5.00') });
  });

  it.each([
    ['no exp', () => sign({}), 'TOKEN_EXPIRY_REQUIRED'],
    ['exp two days ahead', () => sign({ exp: now() + 48 * 3600 }), 'TOKEN_LIFETIME_TOO_LONG'],
    ['iat an hour in the future', () => sign({ iat: now() + 3600, exp: now() + 7200 }), 'TOKEN_ISSUED_IN_FUTURE'],
    ['a reserved id as subject', () => sign({ exp: now() + 600 }, 'System'), 'TOKEN_SUBJECT_INVALID'],
    ['an account kind as subject', () => sign({ exp: now() + 600 }, 'revenue'), 'TOKEN_SUBJECT_INVALID'],
  ])('a token with %s is UNAUTHENTICATED', async (_name, token, reason) => {
    const err = await failure(
      t.client.callWithToken('AccountService', 'GetBalance', { user_id: 'emp-tok', currency_code: 'USD' }, await token()),
    );
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, reason });
  });

  it('a token with exp within the bound works', async () => {
    const ok = await t.client.callWithToken(
      'AccountService',
      'GetBalance',
      { user_id: 'emp-tok', currency_code: 'USD' },
      await sign({ iat: now(), exp: now() + 23 * 3600 }),
    );
    expect(ok).toMatchObject({ available: usd('0.00') });
  });

  it('reserved ids are refused as parties and payees, with nothing appended', async () => {
    await deposit(t.client, 'emp-res', '10.00');
    const before = (await t.engine.log.jsm.streams.info(t.engine.log.names.stream)).state.messages;
    const cases: [() => Promise<unknown>, string][] = [
      [
        () =>
          t.client.m('CreateMilestone', 'emp-res', {
            project_id: 'p-res',
            freelancer_id: 'system',
            amount: usd('1.00'),
            idempotency_key: key(),
          }),
        'freelancer_id',
      ],
      [
        () =>
          t.client.m('CreateMilestone', 'emp-res', {
            project_id: 'p-res',
            freelancer_id: 'WORLD',
            amount: usd('1.00'),
            idempotency_key: key(),
          }),
        'freelancer_id',
      ],
      [
        () =>
          t.client.m('RequestMilestone', 'fl-res', {
            project_id: 'p-res2',
            employer_id: 'system',
            amount: usd('1.00'),
            idempotency_key: key(),
          }),
        'employer_id',
      ],
      [() => t.client.a('Deposit', PAYMENTS, { user_id: 'system', amount: usd('1.00'), external_reference: key() }), 'user_id'],
      [
        () => t.client.r('SubmitReview', 'emp-res', { project_id: 'p-res', reviewee_id: 'system', rating: 5, idempotency_key: key() }),
        'reviewee_id',
      ],
    ];
    for (const [call, field] of cases) {
      const err = await failure(call());
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'ID_RESERVED' });
      expect(err.details).toContain(field);
    }
    expect((await t.engine.log.jsm.streams.info(t.engine.log.names.stream)).state.messages).toBe(before);
    await expectBalance(t.client, 'emp-res', { available: '10.00', held: '0.00', incoming: '0.00' });
  });
});

describe('page tokens', () => {
  const tamper = (t: string) => `${t.slice(0, -2)}${t.endsWith('AA') ? 'BB' : 'AA'}`;

  it('made-up, altered, foreign and out-of-range tokens are INVALID_ARGUMENT, never a database error', async () => {
    await deposit(t.client, 'emp-page', '10.00');
    for (let i = 0; i < 3; i++) await funded(t.client, 'emp-page', 'fl-page', '1.00', 'p-page');
    // Lists read the read model, a moment behind the answers: a page of one with a token, then an empty one, otherwise.
    await ledgerCaughtUp(t.engine);
    const first = await t.client.m('ListMilestones', 'emp-page', { direction: 'OUTGOING', page_size: 1 });
    expect(first.next_page_token).not.toBe('');
    const second = await t.client.m('ListMilestones', 'emp-page', {
      direction: 'OUTGOING',
      page_size: 1,
      page_token: first.next_page_token,
    });
    expect(second.milestones[0].id).not.toBe(first.milestones[0].id);

    const old = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const bad: [string, object][] = [
      [
        "an earlier version's unsigned token with a date PostgreSQL refuses",
        { direction: 'OUTGOING', page_token: old({ c: '+275760-09-13T00:00:00.000Z', id: '00000000-0000-8000-8000-000000000000' }) },
      ],
      ['garbage', { direction: 'OUTGOING', page_token: 'not a token' }],
      ['an altered token', { direction: 'OUTGOING', page_token: tamper(first.next_page_token) }],
      ['a token of another query', { direction: 'INCOMING', page_token: first.next_page_token }],
      ['a token of another query (statuses)', { direction: 'OUTGOING', statuses: ['FUNDED'], page_token: first.next_page_token }],
    ];
    for (const [name, req] of bad) {
      const err = await failure(t.client.m('ListMilestones', 'emp-page', req));
      expect({ name, code: err.code, reason: err.reason }).toEqual({
        name,
        code: grpc.status.INVALID_ARGUMENT,
        reason: 'PAGE_TOKEN_INVALID',
      });
    }
    // Another caller cannot use it either.
    expect(
      (await failure(t.client.m('ListMilestones', 'fl-page', { direction: 'OUTGOING', page_token: first.next_page_token }))).reason,
    ).toBe('PAGE_TOKEN_INVALID');

    const entries = await t.client.a('ListLedgerEntries', 'emp-page', { user_id: 'emp-page', page_size: 1 });
    expect(entries.next_page_token).not.toBe('');
    for (const page_token of ['99999999999999999999', '-1', tamper(entries.next_page_token), old({ s: '99999999999999999999' })]) {
      const err = await failure(t.client.a('ListLedgerEntries', 'emp-page', { user_id: 'emp-page', page_token }));
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'PAGE_TOKEN_INVALID' });
    }
    const next = await t.client.a('ListLedgerEntries', 'emp-page', {
      user_id: 'emp-page',
      page_size: 1,
      page_token: entries.next_page_token,
    });
    expect(next.entries[0].event_id).not.toBe(entries.entries[0].event_id);
    // A token for one user's ledger does not page another's.
    const err = await failure(t.client.a('ListLedgerEntries', PAYMENTS, { user_id: 'emp-page', page_token: entries.next_page_token }));
    expect(err.reason).toBe('PAGE_TOKEN_INVALID');
  });
});
