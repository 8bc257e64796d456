import * as grpc from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/dev/tokens.js';
import { failure, PAYMENTS, TEST_SECRET, usd } from './helpers/client.js';
import { useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';

const t = useEngine();
let milestone: string;
beforeAll(async () => {
  await deposit(t.client, 'emp', '100.00');
  milestone = await funded(t.client, 'emp', 'fl', '10.00', 'proj');
});

describe('rights: the wrong party gets PERMISSION_DENIED', () => {
  const cases: [string, string, () => object, string][] = [
    ['RequestRelease', 'emp', () => ({ milestone_id: milestone, idempotency_key: key() }), 'NOT_FREELANCER'],
    ['RequestRelease', 'stranger', () => ({ milestone_id: milestone, idempotency_key: key() }), 'NOT_FREELANCER'],
    ['ReleaseMilestone', 'fl', () => ({ milestone_id: milestone, idempotency_key: key() }), 'NOT_EMPLOYER'],
    ['ReleaseMilestone', 'stranger', () => ({ milestone_id: milestone, amount: usd('1.00'), idempotency_key: key() }), 'NOT_EMPLOYER'],
    [
      'RequestCancellation',
      'fl',
      () => ({ milestone_id: milestone, reason_code: 'OTHER', reason: 'x', idempotency_key: key() }),
      'NOT_EMPLOYER',
    ],
    [
      'RequestCancellation',
      'stranger',
      () => ({ milestone_id: milestone, reason_code: 'OTHER', reason: 'x', idempotency_key: key() }),
      'NOT_EMPLOYER',
    ],
    ['CancelMilestone', 'stranger', () => ({ milestone_id: milestone, reason: 'x', idempotency_key: key() }), 'NOT_PARTY'],
    ['GetMilestone', 'stranger', () => ({ milestone_id: milestone }), 'NOT_PARTY'],
    ['AcceptAward', 'emp', () => ({ project_id: 'proj', idempotency_key: key() }), 'NOT_FREELANCER'],
    ['AcceptAward', 'stranger', () => ({ project_id: 'proj', idempotency_key: key() }), 'NOT_FREELANCER'],
    [
      'CreateMilestone',
      'stranger',
      () => ({ project_id: 'proj', freelancer_id: 'fl', amount: usd('1.00'), idempotency_key: key() }),
      'NOT_PROJECT_EMPLOYER',
    ],
  ];
  it.each(cases)('%s by %s', async (method, user, request, reason) => {
    const err = await failure(t.client.m(method, user, request()));
    expect(err).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason });
  });

  it.each([
    ['Deposit', 'emp', { user_id: 'emp', amount: usd('1.00'), external_reference: 'r1' }, 'PAYMENTS_ROLE_REQUIRED'],
    ['GetBalance', 'fl', { user_id: 'emp', currency_code: 'USD' }, 'NOT_OWNER'],
    ['ListLedgerEntries', 'fl', { user_id: 'emp' }, 'NOT_OWNER'],
  ])('%s by %s', async (method, user, request, reason) => {
    const err = await failure(t.client.a(method, user, request));
    expect(err).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason });
  });

  it('WatchMilestone by a stranger', async () => {
    const stream = t.client.stream('WatchMilestone', await t.client.token('stranger'), { milestone_id: milestone });
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      stream.on('data', () => {});
      stream.on('error', resolve);
    });
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('the payments role may read any balance', async () => {
    const b = await t.client.a('GetBalance', PAYMENTS, { user_id: 'emp', currency_code: 'USD' });
    expect(b.available).toEqual(usd('90.00'));
  });

  it('nothing changed: the milestone is still FUNDED at version 1', async () => {
    const m = await t.client.m('GetMilestone', 'emp', { milestone_id: milestone });
    expect(m.milestone).toMatchObject({ status: 'FUNDED', version: 1, held: usd('10.00') });
  });
});

describe('award acceptance decides who may cancel', () => {
  it('the employer may cancel before AcceptAward and not after', async () => {
    const c = t.client;
    await deposit(c, 'emp2', '30.00');
    const before = await funded(c, 'emp2', 'fl2', '10.00', 'proj2');
    const cancelled = await c.m('CancelMilestone', 'emp2', { milestone_id: before, reason: 'mistake', idempotency_key: key() });
    expect(cancelled.milestone.status).toBe('CANCELLED');

    const after = await funded(c, 'emp2', 'fl2', '10.00', 'proj2');
    const award = await c.m('AcceptAward', 'fl2', { project_id: 'proj2', idempotency_key: key() });
    expect(award.project).toMatchObject({ award_accepted: true, employer_id: 'emp2', freelancer_id: 'fl2' });
    const refused = await failure(c.m('CancelMilestone', 'emp2', { milestone_id: after, reason: 'x', idempotency_key: key() }));
    expect(refused).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL' });
    const byFreelancer = await c.m('CancelMilestone', 'fl2', { milestone_id: after, reason: 'ok', idempotency_key: key() });
    expect(byFreelancer.milestone.status).toBe('CANCELLED');
  });
});

describe('authentication', () => {
  const call = (token: string | null) => t.client.callWithToken('MilestoneService', 'GetMilestone', { milestone_id: milestone }, token);
  const sign = (claims: Record<string, unknown>, secret = TEST_SECRET, exp: string | number = '1h') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('emp')
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(secret));

  it.each([
    ['no token', async () => null, 'TOKEN_MISSING'],
    ['garbage', async () => 'not-a-jwt', 'TOKEN_MALFORMED'],
    ['forged (wrong secret)', async () => sign({}, 'another-secret-0123456789'), 'TOKEN_INVALID'],
    ['expired', async () => sign({}, TEST_SECRET, Math.floor(Date.now() / 1000) - 60), 'TOKEN_EXPIRED'],
    [
      'alg none',
      async () => {
        const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
        return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ sub: 'emp', exp: Math.floor(Date.now() / 1000) + 600 })}.`;
      },
      'TOKEN_ALGORITHM_REFUSED',
    ],
  ])('%s -> UNAUTHENTICATED', async (_name, token, reason) => {
    const err = await failure(call(await token()));
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, reason });
  });

  it('a valid token works', async () => {
    const ok = await call(await mintToken(TEST_SECRET, 'emp'));
    expect(ok.milestone.id).toBe(milestone);
  });
});
