import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineProcess as BaseProcess } from '../tools/processes.js';
import { EscrowClient, failure, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, eventually, freshNamespace, startEngine, type TestEngine } from './helpers/engine.js';
import { balance, deposit, expectBalance, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

/**
 * Funding decided by the employer's account actor (a reservation on the account's subject,
 * then the milestone funded on its first event), against real processes: a gateway killed
 * between the two appends, a reservation nobody finishes, and two gateways spending one
 * account at once. Each ends with the ledger's auditor.
 */
describe('funding decided by account actors, across killed processes', () => {
  const namespace = freshNamespace();
  let observer: TestEngine;
  const started: BaseProcess[] = [];
  const clients: EscrowClient[] = [];
  const start = async (role: 'gateway' | 'worker' | 'all', env: Record<string, string> = {}) => {
    const p = await EngineProcess.start(role, namespace, env);
    started.push(p);
    return p;
  };
  const client = (p: BaseProcess) => {
    const c = new EscrowClient(p.address);
    clients.push(c);
    return c;
  };
  const postingsOf = async (milestoneId: string) =>
    (
      await observer.db.query(`SELECT kind, count(*)::int AS n FROM postings WHERE milestone_id = $1 GROUP BY kind ORDER BY kind`, [
        milestoneId,
      ])
    ).rows;

  beforeAll(async () => {
    // In-process: no worker; its gateway is only used to sweep on demand (its own sweep waits the default 30 s).
    observer = await startEngine({ namespace, worker: false });
    await start('worker');
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const p of started) await p.kill().catch(() => {});
    await observer.stop();
    await dropNamespace(namespace);
  });

  it('a create whose gateway was killed after the reservation is finished by a retry with the same key: one reservation, one hold', async () => {
    const doomed = await start('gateway', { ESCROW_FAULT_KILL_AFTER_RESERVATION: '1' });
    const c1 = client(doomed);
    await deposit(c1, 'emp-k', '50.00');
    const request = { project_id: 'p-k', freelancer_id: 'fl-k', amount: usd('20.00'), description: 'work', idempotency_key: key() };
    await failure(c1.m('CreateMilestone', 'emp-k', request));
    const c2 = client(await start('gateway'));
    // The reservation made it to the log and the ledger: the money is held, no milestone yet.
    await expectBalance(c2, 'emp-k', { available: '30.00', held: '20.00', incoming: '0.00' });
    const again = await c2.m('CreateMilestone', 'emp-k', request);
    expect(again.milestone).toMatchObject({ status: 'FUNDED', version: 1, held: usd('20.00') });
    await expectBalance(c2, 'emp-k', { available: '30.00', held: '20.00', incoming: '0.00' });
    await expectBalance(c2, 'fl-k', { available: '0.00', held: '0.00', incoming: '20.00' });
    await ledgerCaughtUp(observer.engine);
    expect(await postingsOf(again.milestone.id)).toEqual([
      { kind: 'hold', n: 1 },
      { kind: 'reserve', n: 1 },
    ]);
    await expectLedgerSound(observer.engine);
  });

  it('a reservation whose milestone never appears is given back once by the sweeps; its key then answers RESERVATION_EXPIRED', async () => {
    const doomed = await start('gateway', { ESCROW_FAULT_KILL_AFTER_RESERVATION: '1' });
    const c1 = client(doomed);
    await deposit(c1, 'emp-o', '10.00');
    const request = { project_id: 'p-o', freelancer_id: 'fl-o', amount: usd('10.00'), description: '', idempotency_key: key() };
    await failure(c1.m('CreateMilestone', 'emp-o', request));
    await eventually(async () => {
      const { rows } = await observer.db.query(
        `SELECT available::numeric(20,2)::text AS available, held::numeric(20,2)::text AS held FROM user_balances WHERE user_id = 'emp-o'`,
      );
      expect(rows).toEqual([{ available: '0.00', held: '10.00' }]);
    });
    const { rows: open } = await observer.db.query(`SELECT milestone_id::text FROM postings WHERE kind = 'reserve' AND user_id = 'emp-o'`);
    const milestoneId = open[0].milestone_id as string;
    // Two processes sweep with a 1 s bound, and this one sweeps three times at once besides.
    const c2 = client(await start('gateway', { ESCROW_RESERVATION_TTL_MS: '1000' }));
    await start('worker', { ESCROW_RESERVATION_TTL_MS: '1000' });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await Promise.all([0, 1, 2].map(() => observer.engine.milestones!.sweepReservations(1_000).catch(() => 0)));
    await expectBalance(c2, 'emp-o', { available: '10.00', held: '0.00', incoming: '0.00' });
    await ledgerCaughtUp(observer.engine);
    expect(await postingsOf(milestoneId)).toEqual([
      { kind: 'reserve', n: 1 },
      { kind: 'unreserve', n: 1 },
    ]);
    const { rows: m } = await observer.db.query(`SELECT status FROM milestones WHERE milestone_id = $1`, [milestoneId]);
    expect(m).toEqual([{ status: 'FUNDING_FAILED' }]);
    // The milestone's place is taken: a late retry can no longer consume the reservation.
    expect(await failure(c2.m('CreateMilestone', 'emp-o', request))).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      reason: 'RESERVATION_EXPIRED',
    });
    await expectBalance(c2, 'emp-o', { available: '10.00', held: '0.00', incoming: '0.00' });
    await expectLedgerSound(observer.engine);
  });

  it('two gateways spending one account at once never overdraw it: exactly what it holds is reserved', async () => {
    const a = client(await start('gateway'));
    const b = client(await start('gateway'));
    await deposit(a, 'emp-r', '100.00');
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b)
          .m('CreateMilestone', 'emp-r', {
            project_id: 'p-r',
            freelancer_id: 'fl-r',
            amount: usd('10.00'),
            description: '',
            idempotency_key: key(),
          })
          .then(
            (r) => r.milestone.status as string,
            (e: { reason: string }) => e.reason,
          ),
      ),
    );
    const byAnswer = answers.reduce<Record<string, number>>((n, x) => ({ ...n, [x]: (n[x] ?? 0) + 1 }), {});
    expect(byAnswer).toEqual({ FUNDED: 10, INSUFFICIENT_FUNDS: 30 });
    await expectBalance(a, 'emp-r', { available: '0.00', held: '100.00', incoming: '0.00' });
    await ledgerCaughtUp(observer.engine);
    await expectLedgerSound(observer.engine);
  });

  it('debits the ledger has posted are not counted twice: money that came in later is spendable, to the cent', async () => {
    const a = client(await start('gateway'));
    await deposit(a, 'emp-c', '20.00');
    const create = (amount: string) =>
      a.m('CreateMilestone', 'emp-c', {
        project_id: 'p-c',
        freelancer_id: 'fl-c',
        amount: usd(amount),
        description: '',
        idempotency_key: key(),
      });
    expect((await create('10.00')).milestone.status).toBe('FUNDED');
    await ledgerCaughtUp(observer.engine);
    await deposit(a, 'emp-c', '10.00');
    expect((await create('20.00')).milestone.status).toBe('FUNDED');
    expect(await failure(create('0.01'))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
    await expectBalance(a, 'emp-c', { available: '0.00', held: '30.00', incoming: '0.00' });
  });

  it('an accept whose gateway was killed after the reservation: kept while the request is open, given back once it is withdrawn', async () => {
    const c = client(await start('gateway', { ESCROW_RESERVATION_TTL_MS: '1000' }));
    await deposit(c, 'emp-a', '30.00');
    expect(
      (
        await c.m('CreateMilestone', 'emp-a', {
          project_id: 'p-a',
          freelancer_id: 'fl-a',
          amount: usd('10.00'),
          description: '',
          idempotency_key: key(),
        })
      ).milestone.status,
    ).toBe('FUNDED');
    const asked = (
      await c.m('RequestMilestone', 'fl-a', {
        project_id: 'p-a',
        employer_id: 'emp-a',
        amount: usd('15.00'),
        description: 'more',
        idempotency_key: key(),
      })
    ).milestone;
    const doomed = client(await start('gateway', { ESCROW_FAULT_KILL_AFTER_RESERVATION: '1' }));
    await failure(doomed.m('AcceptMilestoneRequest', 'emp-a', { milestone_id: asked.id, idempotency_key: key() }));
    await expectBalance(c, 'emp-a', { available: '5.00', held: '25.00', incoming: '0.00' });
    // Still requested: the sweep keeps the reservation for a retry of that accept.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await observer.engine.milestones!.sweepReservations(1_000);
    await expectBalance(c, 'emp-a', { available: '5.00', held: '25.00', incoming: '0.00' });
    // The freelancer withdraws the request: no accept can consume the reservation any more.
    expect((await c.m('WithdrawMilestoneRequest', 'fl-a', { milestone_id: asked.id, idempotency_key: key() })).milestone.status).toBe(
      'REQUEST_WITHDRAWN',
    );
    await Promise.all([0, 1, 2].map(() => observer.engine.milestones!.sweepReservations(1_000).catch(() => 0)));
    await expectBalance(c, 'emp-a', { available: '20.00', held: '10.00', incoming: '0.00' });
    await ledgerCaughtUp(observer.engine);
    expect(await postingsOf(asked.id)).toEqual([
      { kind: 'reserve', n: 1 },
      { kind: 'unreserve', n: 1 },
    ]);
    await expectLedgerSound(observer.engine);
  });

  it('a balance read right after a create shows its reservation, before the ledger posts it (no worker runs)', async () => {
    const c = client(await start('gateway'));
    await deposit(c, 'emp-now', '10.00');
    // No ledger from here on: creates are decided by the account actors alone.
    for (const p of started.filter((x) => x.role === 'worker')) await p.kill();
    const made = await c.m('CreateMilestone', 'emp-now', {
      project_id: 'p-now',
      freelancer_id: 'fl-now',
      amount: usd('4.00'),
      description: '',
      idempotency_key: key(),
    });
    expect(made.milestone.status).toBe('FUNDED');
    expect(await balance(c, 'emp-now')).toEqual({ available: '6.00', held: '4.00', incoming: '0.00' });
    // And the account actor will not spend it twice meanwhile.
    expect(
      await failure(
        c.m('CreateMilestone', 'emp-now', {
          project_id: 'p-now',
          freelancer_id: 'fl-now',
          amount: usd('6.01'),
          description: '',
          idempotency_key: key(),
        }),
      ),
    ).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
    await start('worker');
    await expectBalance(c, 'emp-now', { available: '6.00', held: '4.00', incoming: '0.00' });
    await ledgerCaughtUp(observer.engine);
    await expectLedgerSound(observer.engine);
  });
});
