import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { useEngine } from './helpers/engine.js';
import { deposit, expectBalance, key } from './helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();
const MARKET = { id: 'market-svc', roles: ['marketplace'] };

const award = (caller: string | { id: string; roles: string[] }, req: object) =>
  t.client.m('AwardProject', caller, { idempotency_key: key(), ...req });

describe('projects registered before any milestone (AwardProject)', () => {
  it('the employer awards, the freelancer requests the first milestone right away, and it is funded on accept', async () => {
    const c = t.client;
    const a = await award('emp-a', { project_id: 'proj-a', freelancer_id: 'fl-a' });
    expect(a.project).toMatchObject({ id: 'proj-a', employer_id: 'emp-a', freelancer_id: 'fl-a', award_accepted: false, version: 1 });
    const r = await c.m('RequestMilestone', 'fl-a', {
      project_id: 'proj-a',
      employer_id: 'emp-a',
      amount: usd('12.00'),
      description: 'first milestone',
      idempotency_key: key(),
    });
    expect(r.milestone).toMatchObject({ status: 'REQUESTED', employer_id: 'emp-a', freelancer_id: 'fl-a', held: usd('0.00') });
    await deposit(c, 'emp-a', '20.00');
    const accepted = await c.m('AcceptMilestoneRequest', 'emp-a', { milestone_id: r.milestone.id, idempotency_key: key() });
    expect(accepted.milestone).toMatchObject({ status: 'FUNDED', held: usd('12.00') });
    await expectBalance(c, 'emp-a', { available: '8.00', held: '12.00', incoming: '0.00' });
    const got = await c.m('GetProject', 'fl-a', { project_id: 'proj-a' });
    expect(got.project).toMatchObject({ employer_id: 'emp-a', freelancer_id: 'fl-a' });
    await c.m('AcceptAward', 'fl-a', { project_id: 'proj-a', idempotency_key: key() });
    expect((await c.m('GetProject', 'emp-a', { project_id: 'proj-a' })).project.award_accepted).toBe(true);
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
  });

  it('is idempotent by its parties: the same award again changes nothing, other parties are refused', async () => {
    const registering = key();
    const first = await award('emp-b', { project_id: 'proj-b', freelancer_id: 'fl-b', idempotency_key: registering });
    const again = await award('emp-b', { project_id: 'proj-b', freelancer_id: 'fl-b' });
    expect(again.project).toEqual(first.project);
    const k = key();
    const copies = await Promise.all(
      [0, 1, 2].map(() => award('emp-b', { project_id: 'proj-b', freelancer_id: 'fl-b', idempotency_key: k })),
    );
    for (const copy of copies) expect(copy.project).toEqual(first.project);
    const reused = await failure(award('emp-b', { project_id: 'proj-b', freelancer_id: 'fl-other', idempotency_key: registering }));
    expect([reused.code, reused.reason]).toEqual([grpc.status.INVALID_ARGUMENT, 'IDEMPOTENCY_KEY_REUSED']);
    expect((await award('emp-b', { project_id: 'proj-b', freelancer_id: 'fl-b', idempotency_key: registering })).project).toEqual(
      first.project,
    );
    const other = await failure(award('emp-b', { project_id: 'proj-b', freelancer_id: 'fl-other' }));
    expect([other.code, other.reason]).toEqual([grpc.status.FAILED_PRECONDITION, 'FREELANCER_NOT_AWARDED']);
    const claim = await failure(award('squatter', { project_id: 'proj-b', freelancer_id: 'fl-b' }));
    expect([claim.code, claim.reason]).toEqual([grpc.status.PERMISSION_DENIED, 'NOT_PROJECT_EMPLOYER']);
    // A create by another employer on the awarded project is refused the same way, and reserves nothing.
    await deposit(t.client, 'squatter', '5.00');
    const create = await failure(
      t.client.m('CreateMilestone', 'squatter', {
        project_id: 'proj-b',
        freelancer_id: 'fl-b',
        amount: usd('1.00'),
        idempotency_key: key(),
      }),
    );
    expect(create.reason).toBe('NOT_PROJECT_EMPLOYER');
    await expectBalance(t.client, 'squatter', { available: '5.00', held: '0.00', incoming: '0.00' });
    expect((await t.client.m('GetProject', 'emp-b', { project_id: 'proj-b' })).project.version).toBe(1);
  });

  it('a marketplace service awards for an employer; no one else may name another employer', async () => {
    const m = await award(MARKET, { project_id: 'proj-m', freelancer_id: 'fl-m', employer_id: 'emp-m' });
    expect(m.project).toMatchObject({ employer_id: 'emp-m', freelancer_id: 'fl-m' });
    // The employer's own create on it is the same registration.
    await deposit(t.client, 'emp-m', '3.00');
    const created = await t.client.m('CreateMilestone', 'emp-m', {
      project_id: 'proj-m',
      freelancer_id: 'fl-m',
      amount: usd('3.00'),
      idempotency_key: key(),
    });
    expect(created.milestone.status).toBe('FUNDED');
    const forged = await failure(award('emp-x', { project_id: 'proj-x', freelancer_id: 'fl-x', employer_id: 'emp-victim' }));
    expect([forged.code, forged.reason]).toEqual([grpc.status.PERMISSION_DENIED, 'MARKETPLACE_ROLE_REQUIRED']);
    expect((await failure(t.client.m('GetProject', 'emp-victim', { project_id: 'proj-x' }))).reason).toBe('PROJECT_NOT_FOUND');
    // Naming oneself needs no role.
    const own = await award('emp-y', { project_id: 'proj-y', freelancer_id: 'fl-y', employer_id: 'emp-y' });
    expect(own.project.employer_id).toBe('emp-y');
  });

  it('refuses bad input and strangers, and changes nothing', async () => {
    const cases: [object, string][] = [
      [{ project_id: '', freelancer_id: 'fl-z' }, 'FIELD_REQUIRED'],
      [{ project_id: 'proj-z', freelancer_id: 'system' }, 'ID_RESERVED'],
      [{ project_id: 'proj-z', freelancer_id: 'emp-z' }, 'SELF_AWARD'],
      [{ project_id: 'proj-z', freelancer_id: 'fl z' }, 'ID_INVALID'],
      [{ project_id: 'proj-z', freelancer_id: 'fl-z', idempotency_key: '' }, 'IDEMPOTENCY_KEY_REQUIRED'],
    ];
    for (const [req, reason] of cases) expect((await failure(award('emp-z', req))).reason).toBe(reason);
    expect((await failure(t.client.m('GetProject', 'emp-z', { project_id: 'proj-z' }))).reason).toBe('PROJECT_NOT_FOUND');
    await award('emp-z', { project_id: 'proj-z', freelancer_id: 'fl-z' });
    const stranger = await failure(t.client.m('GetProject', 'stranger', { project_id: 'proj-z' }));
    expect([stranger.code, stranger.reason]).toEqual([grpc.status.PERMISSION_DENIED, 'NOT_PARTY']);
    expect((await t.client.m('GetProject', MARKET, { project_id: 'proj-z' })).project.employer_id).toBe('emp-z');
  });
});

describe('ESCROW_PROJECT_AWARDS=marketplace: only the marketplace brings a project into being', () => {
  const m = useEngine({ env: { ESCROW_PROJECT_AWARDS: 'marketplace' } });

  it('no caller can claim or block a project id; milestones follow the marketplace award', async () => {
    const c = m.client;
    await deposit(c, 'emp-q', '10.00');
    const create = (project: string) =>
      c.m('CreateMilestone', 'emp-q', { project_id: project, freelancer_id: 'fl-q', amount: usd('4.00'), idempotency_key: key() });
    // Unawarded: a create is NOT_FOUND and reserves nothing; an employer's own award is refused.
    expect((await failure(create('proj-q'))).reason).toBe('PROJECT_NOT_FOUND');
    const own = await failure(c.m('AwardProject', 'squatter', { project_id: 'proj-q', freelancer_id: 'fl-q', idempotency_key: key() }));
    expect([own.code, own.reason]).toEqual([grpc.status.PERMISSION_DENIED, 'MARKETPLACE_ROLE_REQUIRED']);
    await expectBalance(c, 'emp-q', { available: '10.00', held: '0.00', incoming: '0.00' });
    // The marketplace awards it to the real employer: the employer's milestones work, and its repeat of the award is a no-op.
    await c.m('AwardProject', MARKET, { project_id: 'proj-q', freelancer_id: 'fl-q', employer_id: 'emp-q', idempotency_key: key() });
    expect((await create('proj-q')).milestone.status).toBe('FUNDED');
    const repeat = await c.m('AwardProject', 'emp-q', { project_id: 'proj-q', freelancer_id: 'fl-q', idempotency_key: key() });
    expect(repeat.project).toMatchObject({ employer_id: 'emp-q', version: 1 });
    await expectBalance(c, 'emp-q', { available: '6.00', held: '4.00', incoming: '0.00' });
  });
});
