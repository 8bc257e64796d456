import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EscrowClient, failure, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, startEngine, type TestEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, funded, key } from './helpers/flows.js';

let t: TestEngine;
let second: TestEngine;
let other: EscrowClient;
beforeAll(async () => {
  t = await startEngine();
  // A second gateway on the same namespace, with actors of its own.
  second = await startEngine({ namespace: t.namespace, worker: false });
  other = second.client;
});
afterAll(async () => {
  await second.stop();
  await t.stop();
  await dropNamespace(t.namespace);
});

const create = (c: EscrowClient, employer: string, k: string, amount = '10.00', project = `proj-${employer}`) =>
  c.m('CreateMilestone', employer, {
    project_id: project,
    freelancer_id: 'fl',
    amount: usd(amount),
    description: 'same',
    idempotency_key: k,
  });

describe('idempotency', () => {
  it('CreateMilestone repeated with the same key: the same milestone, funded once', async () => {
    await deposit(t.client, 'emp1', '50.00');
    const k = key();
    const first = await create(t.client, 'emp1', k);
    const again = await create(t.client, 'emp1', k);
    const elsewhere = await create(other, 'emp1', k);
    expect(again.milestone.id).toBe(first.milestone.id);
    expect(elsewhere.milestone.id).toBe(first.milestone.id);
    expect(again.milestone).toMatchObject({ status: 'FUNDED', version: first.milestone.version });
    await expectBalance(t.client, 'emp1', { available: '40.00', held: '10.00', incoming: '0.00' });
  });

  it('CreateMilestone repeats arriving at once, on two gateways: one milestone, one hold', async () => {
    await deposit(t.client, 'emp2', '50.00');
    const k = key();
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => create(i % 2 ? other : t.client, 'emp2', k)));
    expect(new Set(answers.map((a) => a.milestone.id)).size).toBe(1);
    for (const a of answers) expect(a.milestone.status).toBe('FUNDED');
    await expectBalance(t.client, 'emp2', { available: '40.00', held: '10.00', incoming: '0.00' });
    // One reservation on the employer's account, consumed by one hold.
    const { rows } = await t.db.query(`SELECT kind, count(*)::int AS n FROM postings WHERE milestone_id = $1 GROUP BY kind ORDER BY kind`, [
      answers[0].milestone.id,
    ]);
    expect(rows).toEqual([
      { kind: 'hold', n: 1 },
      { kind: 'reserve', n: 1 },
    ]);
  });

  it('the same key with other content is INVALID_ARGUMENT and changes nothing', async () => {
    await deposit(t.client, 'emp3', '50.00');
    const k = key();
    await create(t.client, 'emp3', k, '10.00');
    const err = await failure(create(t.client, 'emp3', k, '11.00'));
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'IDEMPOTENCY_KEY_REUSED' });
    const err2 = await failure(create(other, 'emp3', k, '10.00', 'another-project'));
    expect(err2).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await balance(t.client, 'emp3')).toEqual({ available: '40.00', held: '10.00', incoming: '0.00' });
  });

  it('ReleaseMilestone repeated with the same key, at once and across gateways: released once', async () => {
    await deposit(t.client, 'emp4', '50.00');
    const id = await funded(t.client, 'emp4', 'fl4', '20.00', 'proj4');
    const k = key();
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? other : t.client).m('ReleaseMilestone', 'emp4', { milestone_id: id, amount: usd('5.00'), idempotency_key: k }),
      ),
    );
    for (const a of answers) expect(a.milestone).toMatchObject({ held: usd('15.00'), released: usd('5.00') });
    const reuse = await failure(t.client.m('ReleaseMilestone', 'emp4', { milestone_id: id, amount: usd('6.00'), idempotency_key: k }));
    expect(reuse).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'IDEMPOTENCY_KEY_REUSED' });
    // A key used for a release cannot be reused by the same caller for another command either.
    const crossOp = await failure(
      t.client.m('RequestCancellation', 'emp4', { milestone_id: id, reason_code: 'OTHER', idempotency_key: k }),
    );
    expect(crossOp).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'IDEMPOTENCY_KEY_REUSED' });
    // Keys are the caller's own: a stranger sending the same key is judged on its own rights.
    const stranger = await failure(
      t.client.m('ReleaseMilestone', 'stranger', { milestone_id: id, amount: usd('5.00'), idempotency_key: k }),
    );
    expect(stranger).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'NOT_EMPLOYER' });
    await expectBalance(t.client, 'fl4', { available: '5.00', held: '0.00', incoming: '15.00' });
  });

  it('Deposit is idempotent by external_reference; other content under it is refused', async () => {
    const ref = key('ext');
    const req = { user_id: 'emp5', amount: usd('7.00'), external_reference: ref };
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? other : t.client).a('Deposit', PAYMENTS, req)));
    expect(new Set(answers.map((a) => a.operation_id)).size).toBe(1);
    for (const a of answers) expect(a.status).toBe('APPLIED');
    const conflict = await failure(t.client.a('Deposit', PAYMENTS, { ...req, amount: usd('8.00') }));
    expect(conflict).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'EXTERNAL_REFERENCE_REUSED' });
    expect(await balance(t.client, 'emp5')).toEqual({ available: '7.00', held: '0.00', incoming: '0.00' });
  });

  it('Withdraw is idempotent by external_reference', async () => {
    await deposit(t.client, 'emp6', '9.00');
    const req = { amount: usd('4.00'), external_reference: key('wd') };
    const [a, b] = await Promise.all([t.client.a('Withdraw', 'emp6', req), other.a('Withdraw', 'emp6', req)]);
    expect(a.operation_id).toBe(b.operation_id);
    expect(await balance(t.client, 'emp6')).toEqual({ available: '5.00', held: '0.00', incoming: '0.00' });
  });
});
