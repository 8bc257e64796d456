import * as grpc from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { failure, PAYMENTS, usd } from './helpers/client.js';
import { useEngine } from './helpers/engine.js';
import { balance, deposit, funded, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();
let milestone: string;
beforeAll(async () => {
  await deposit(t.client, 'emp', '100.00');
  milestone = await funded(t.client, 'emp', 'fl', '10.00', 'proj');
});

async function streamMessages(): Promise<number> {
  const info = await t.engine.log.jsm.streams.info(t.engine.log.names.stream);
  return info.state.messages;
}

const BAD_AMOUNTS: [string, { currency_code: string; amount: string } | null, string][] = [
  ['zero', usd('0'), 'AMOUNT_NOT_POSITIVE'],
  ['negative', usd('-1'), 'AMOUNT_INVALID'],
  ['three decimals in USD', usd('1.234'), 'AMOUNT_SCALE'],
  ['decimals in JPY', { currency_code: 'JPY', amount: '1.5' }, 'AMOUNT_SCALE'],
  ['letters', usd('abc'), 'AMOUNT_INVALID'],
  ['exponent', usd('1e3'), 'AMOUNT_INVALID'],
  ['empty', usd(''), 'AMOUNT_REQUIRED'],
  ['huge', usd('1' + '0'.repeat(30)), 'AMOUNT_TOO_LARGE'],
  ['unknown currency', { currency_code: 'ZZZ', amount: '1.00' }, 'CURRENCY_UNKNOWN'],
  ['whitespace', usd(' 1.00'), 'AMOUNT_INVALID'],
  ['leading zero', usd('01.00'), 'AMOUNT_INVALID'],
  ['missing', null, 'AMOUNT_REQUIRED'],
];

describe('bad input gets INVALID_ARGUMENT and changes nothing', () => {
  let before: { messages: number; emp: unknown; fl: unknown };
  beforeAll(async () => {
    // Balances read the ledger, a moment behind the answers: the snapshot waits for it, so
    // the funding posted after it is not taken for a change made by bad input.
    await ledgerCaughtUp(t.engine);
    before = { messages: await streamMessages(), emp: await balance(t.client, 'emp'), fl: await balance(t.client, 'fl') };
  });

  it.each(BAD_AMOUNTS)('CreateMilestone with amount %s', async (_n, amount, reason) => {
    const err = await failure(
      t.client.m('CreateMilestone', 'emp', { project_id: 'proj', freelancer_id: 'fl', amount, idempotency_key: key() }),
    );
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
  });

  it.each(BAD_AMOUNTS.filter(([n]) => n !== 'missing' && n !== 'empty'))('ReleaseMilestone with amount %s', async (_n, amount, reason) => {
    const err = await failure(t.client.m('ReleaseMilestone', 'emp', { milestone_id: milestone, amount, idempotency_key: key() }));
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
  });

  it.each(BAD_AMOUNTS)('Deposit with amount %s', async (_n, amount, reason) => {
    const err = await failure(t.client.a('Deposit', PAYMENTS, { user_id: 'emp', amount, external_reference: key() }));
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
  });

  it.each(BAD_AMOUNTS)('Withdraw with amount %s', async (_n, amount, reason) => {
    const err = await failure(t.client.a('Withdraw', 'emp', { amount, external_reference: key() }));
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
  });

  const good = () => ({ project_id: 'proj', freelancer_id: 'fl', amount: usd('1.00'), idempotency_key: key() });
  it.each<[string, () => object, string, grpc.status?]>([
    ['CreateMilestone without project_id', () => ({ ...good(), project_id: '' }), 'FIELD_REQUIRED'],
    ['CreateMilestone without freelancer_id', () => ({ ...good(), freelancer_id: '' }), 'FIELD_REQUIRED'],
    ['CreateMilestone with a project_id holding a subject wildcard', () => ({ ...good(), project_id: 'a.>' }), 'ID_INVALID'],
    ['CreateMilestone with an injection-like id', () => ({ ...good(), freelancer_id: "x'; DROP TABLE accounts;--" }), 'ID_INVALID'],
    ['CreateMilestone without idempotency_key', () => ({ ...good(), idempotency_key: '' }), 'IDEMPOTENCY_KEY_REQUIRED'],
    [
      'CreateMilestone with a freelancer that is the employer',
      () => ({ ...good(), project_id: 'selfie', freelancer_id: 'emp' }),
      'SELF_AWARD',
    ],
    ['ReleaseMilestone without milestone_id', () => ({ idempotency_key: key() }), 'FIELD_REQUIRED'],
    ['ReleaseMilestone with a malformed milestone_id', () => ({ milestone_id: 'abc', idempotency_key: key() }), 'ID_INVALID'],
    ['ReleaseMilestone without idempotency_key', () => ({ milestone_id: milestone }), 'IDEMPOTENCY_KEY_REQUIRED'],
    ['RequestRelease without idempotency_key', () => ({ milestone_id: milestone }), 'IDEMPOTENCY_KEY_REQUIRED'],
    ['CancelMilestone without milestone_id', () => ({ idempotency_key: key() }), 'FIELD_REQUIRED'],
    [
      'RequestCancellation with a too long reason',
      () => ({ milestone_id: milestone, reason_code: 'OTHER', reason: 'x'.repeat(3000), idempotency_key: key() }),
      'TEXT_TOO_LONG',
    ],
    [
      'RequestCancellation without a reason code',
      () => ({ milestone_id: milestone, reason: 'x', idempotency_key: key() }),
      'REASON_CODE_REQUIRED',
    ],
    [
      'RequestCancellation with an unknown reason code',
      () => ({ milestone_id: milestone, reason_code: 99, idempotency_key: key() }),
      'REASON_CODE_INVALID',
    ],
    ['AcceptAward without project_id', () => ({ idempotency_key: key() }), 'FIELD_REQUIRED'],
    ['GetMilestone without milestone_id', () => ({}), 'FIELD_REQUIRED'],
    ['ListMilestones without direction', () => ({}), 'DIRECTION_REQUIRED'],
    ['ListMilestones with a forged page token', () => ({ direction: 'OUTGOING', page_token: 'bm9wZQ' }), 'PAGE_TOKEN_INVALID'],
  ])('%s', async (name, request, reason) => {
    const method = name.split(' ')[0]!;
    const caller =
      method === 'ReleaseMilestone' || method === 'CreateMilestone' || method === 'RequestCancellation' || method === 'ListMilestones'
        ? 'emp'
        : 'fl';
    const err = await failure(t.client.m(method, caller, request()));
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
  });

  it.each<[string, object, string]>([
    ['Deposit without user_id', { amount: usd('1.00'), external_reference: 'r' }, 'FIELD_REQUIRED'],
    ['Deposit without external_reference', { user_id: 'emp', amount: usd('1.00') }, 'FIELD_REQUIRED'],
    ['GetBalance without currency', { user_id: 'emp' }, 'FIELD_REQUIRED'],
    ['GetBalance with unknown currency', { user_id: 'emp', currency_code: 'ABC' }, 'CURRENCY_UNKNOWN'],
  ])('%s', async (name, request, reason) => {
    const err = await failure(t.client.a(name.split(' ')[0]!, PAYMENTS, request));
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason });
  });

  it('a release in another currency than the milestone is refused', async () => {
    const err = await failure(
      t.client.m('ReleaseMilestone', 'emp', {
        milestone_id: milestone,
        amount: { currency_code: 'EUR', amount: '1.00' },
        idempotency_key: key(),
      }),
    );
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'CURRENCY_MISMATCH' });
  });

  it('an unknown milestone is NOT_FOUND', async () => {
    const err = await failure(
      t.client.m('ReleaseMilestone', 'emp', { milestone_id: '00000000-0000-4000-8000-000000000000', idempotency_key: key() }),
    );
    expect(err).toMatchObject({ code: grpc.status.NOT_FOUND, reason: 'MILESTONE_NOT_FOUND' });
  });

  it.each([
    ['OpenDispute without a reason', 'OpenDispute', { claimed_amount: usd('1.00') }, 'FIELD_REQUIRED'],
    ['OpenDispute without a claim', 'OpenDispute', { reason: 'late' }, 'AMOUNT_REQUIRED'],
    ['OpenDispute with a zero claim', 'OpenDispute', { reason: 'late', claimed_amount: usd('0') }, 'AMOUNT_NOT_POSITIVE'],
    ['OpenDispute with a claim above what is held', 'OpenDispute', { reason: 'late', claimed_amount: usd('10.01') }, 'CLAIM_EXCEEDS_HELD'],
    [
      'OpenDispute in another currency',
      'OpenDispute',
      { reason: 'late', claimed_amount: { currency_code: 'EUR', amount: '1.00' } },
      'CURRENCY_MISMATCH',
    ],
    ['ProposeSettlement with a negative amount', 'ProposeSettlement', { freelancer_amount: usd('-1.00') }, 'AMOUNT_INVALID'],
    ['ProposeSettlement on a milestone not in dispute', 'ProposeSettlement', { freelancer_amount: usd('1.00') }, 'ILLEGAL_IN_STATUS'],
    ['AcceptSettlement with a bad amount', 'AcceptSettlement', { freelancer_amount: usd('1.001') }, 'AMOUNT_SCALE'],
    ['EscalateDispute on a milestone not in dispute', 'EscalateDispute', {}, 'ILLEGAL_IN_STATUS'],
    ['PayArbitrationFee on a milestone not in dispute', 'PayArbitrationFee', {}, 'ILLEGAL_IN_STATUS'],
    ['PayArbitrationFee without a key', 'PayArbitrationFee', { idempotency_key: '' }, 'IDEMPOTENCY_KEY_REQUIRED'],
    ['PayArbitrationFee on a bad milestone id', 'PayArbitrationFee', { milestone_id: 'not-a-uuid' }, 'ID_INVALID'],
    [
      'CreateMilestone with a review window above 90 days',
      'CreateMilestone',
      { project_id: 'p', freelancer_id: 'fl', amount: usd('1.00'), review_window_seconds: 90 * 86_400 + 1 },
      'REVIEW_WINDOW_INVALID',
    ],
  ] as const)('%s is refused', async (_name, method, fields, reason) => {
    const err = await failure(t.client.m(method, 'emp', { milestone_id: milestone, idempotency_key: key(), ...fields }));
    expect(err.reason).toBe(reason);
    expect([grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION]).toContain(err.code);
  });

  it('afterwards the stream and the balances are unchanged', async () => {
    expect(await streamMessages()).toBe(before.messages);
    expect(await balance(t.client, 'emp')).toEqual(before.emp);
    expect(await balance(t.client, 'fl')).toEqual(before.fl);
    const m = await t.client.m('GetMilestone', 'emp', { milestone_id: milestone });
    expect(m.milestone).toMatchObject({ status: 'FUNDED', version: 1 });
  });
});
