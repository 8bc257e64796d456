import { describe, expect, it } from 'vitest';
import { decide, type Decision } from './decide.js';
import { initialMilestoneContext, milestoneMachine, type MilestoneContext, type MilestoneEvent } from './milestone.machine.js';
import { Decimal } from 'decimal.js';

const AT = '2026-12-01T00:00:00.000Z';
const EMPLOYER = 'emp';
const FREELANCER = 'fl';
const ROLES = { employer: EMPLOYER, freelancer: FREELANCER, stranger: 'someone-else', system: 'system' } as const;
type Role = keyof typeof ROLES;

const STATES = [
  'new', 'requested', 'requestRejected', 'requestWithdrawn', 'pendingFunding', 'fundingFailed', 'funded',
  'releaseRequested', 'cancellationRequested', 'released', 'cancelled',
] as const;
type State = (typeof STATES)[number];

function contextIn(state: State): MilestoneContext {
  if (state === 'new') return initialMilestoneContext;
  const base = {
    ...initialMilestoneContext,
    id: 'm1',
    projectId: 'p1',
    employerId: EMPLOYER,
    freelancerId: FREELANCER,
    currency: 'USD',
    amount: '10.00',
    held: '10.00',
    released: '0.00',
    returned: '0.00',
    createdAt: AT,
    updatedAt: AT,
  };
  if (['requested', 'requestRejected', 'requestWithdrawn', 'pendingFunding', 'fundingFailed'].includes(state)) return { ...base, held: '0.00' };
  if (state === 'cancellationRequested') return { ...base, stateBeforeCancellationRequest: 'releaseRequested' };
  if (state === 'released') return { ...base, held: '0.00', released: '10.00' };
  if (state === 'cancelled') return { ...base, held: '0.00', returned: '10.00' };
  return base;
}

type CommandCase = { name: string; event: (by: string) => MilestoneEvent };
const caller = (id: string) => ({ id, roles: [] });
const COMMANDS: CommandCase[] = [
  { name: 'CREATE', event: (by) => ({ type: 'CREATE', by: caller(by), at: AT, milestoneId: 'm1', projectId: 'p1', freelancerId: FREELANCER, currency: 'USD', amount: '10.00', description: '' }) },
  { name: 'REQUEST', event: (by) => ({ type: 'REQUEST', by: caller(by), at: AT, milestoneId: 'm1', projectId: 'p1', employerId: EMPLOYER, currency: 'USD', amount: '10.00', description: '' }) },
  { name: 'ACCEPT_REQUEST', event: (by) => ({ type: 'ACCEPT_REQUEST', by: caller(by), at: AT }) },
  { name: 'REJECT_REQUEST', event: (by) => ({ type: 'REJECT_REQUEST', by: caller(by), at: AT }) },
  { name: 'WITHDRAW_REQUEST', event: (by) => ({ type: 'WITHDRAW_REQUEST', by: caller(by), at: AT }) },
  { name: 'REJECT_CANCELLATION', event: (by) => ({ type: 'REJECT_CANCELLATION', by: caller(by), at: AT }) },
  { name: 'FUNDING_SUCCEEDED', event: (by) => ({ type: 'FUNDING_SUCCEEDED', by: caller(by), at: AT }) },
  { name: 'FUNDING_FAILED', event: (by) => ({ type: 'FUNDING_FAILED', by: caller(by), at: AT, reason: 'INSUFFICIENT_FUNDS' }) },
  { name: 'REQUEST_RELEASE', event: (by) => ({ type: 'REQUEST_RELEASE', by: caller(by), at: AT }) },
  { name: 'RELEASE', event: (by) => ({ type: 'RELEASE', by: caller(by), at: AT, amount: '', currency: '' }) },
  { name: 'RELEASE_PARTIAL', event: (by) => ({ type: 'RELEASE', by: caller(by), at: AT, amount: '4.00', currency: 'USD' }) },
  { name: 'REQUEST_CANCELLATION', event: (by) => ({ type: 'REQUEST_CANCELLATION', by: caller(by), at: AT, reason: 'other' }) },
  { name: 'CANCEL_BEFORE_AWARD', event: (by) => ({ type: 'CANCEL', by: caller(by), at: AT, reason: '', awardAccepted: false }) },
  { name: 'CANCEL_AFTER_AWARD', event: (by) => ({ type: 'CANCEL', by: caller(by), at: AT, reason: '', awardAccepted: true }) },
];

// The rules of the guide, section 2, written out independently of the machine.
const WHO_MAY: Record<string, (role: Role) => string | null> = {
  CREATE: () => null,
  REQUEST: () => null,
  ACCEPT_REQUEST: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  REJECT_REQUEST: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  WITHDRAW_REQUEST: (r) => (r === 'freelancer' ? null : 'NOT_FREELANCER'),
  REJECT_CANCELLATION: (r) => (r === 'freelancer' ? null : 'NOT_FREELANCER'),
  FUNDING_SUCCEEDED: (r) => (r === 'system' ? null : 'SYSTEM_ONLY'),
  FUNDING_FAILED: (r) => (r === 'system' ? null : 'SYSTEM_ONLY'),
  REQUEST_RELEASE: (r) => (r === 'freelancer' ? null : 'NOT_FREELANCER'),
  RELEASE: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  RELEASE_PARTIAL: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  REQUEST_CANCELLATION: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  CANCEL_BEFORE_AWARD: (r) => (r === 'freelancer' || r === 'employer' ? null : 'NOT_PARTY'),
  CANCEL_AFTER_AWARD: (r) => (r === 'freelancer' ? null : r === 'employer' ? 'AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL' : 'NOT_PARTY'),
};
const HOLDING: State[] = ['funded', 'releaseRequested', 'cancellationRequested'];
function legalNext(state: State, command: string): State | null {
  if (state === 'requested' && command === 'ACCEPT_REQUEST') return 'pendingFunding';
  if (state === 'requested' && command === 'REJECT_REQUEST') return 'requestRejected';
  if (state === 'requested' && command === 'WITHDRAW_REQUEST') return 'requestWithdrawn';
  // The fixture's cancellation request came from RELEASE_REQUESTED; rejecting it goes back there.
  if (state === 'cancellationRequested' && command === 'REJECT_CANCELLATION') return 'releaseRequested';
  if (state === 'pendingFunding' && command === 'FUNDING_SUCCEEDED') return 'funded';
  if (state === 'pendingFunding' && command === 'FUNDING_FAILED') return 'fundingFailed';
  if (!HOLDING.includes(state)) return null;
  if (command === 'RELEASE') return 'released';
  if (command === 'RELEASE_PARTIAL') return state;
  if (command.startsWith('CANCEL_')) return 'cancelled';
  if (command === 'REQUEST_RELEASE' && state === 'funded') return 'releaseRequested';
  if (command === 'REQUEST_CANCELLATION' && state !== 'cancellationRequested') return 'cancellationRequested';
  return null;
}

function expected(state: State, command: string, role: Role): { next: State } | { code: string; reason: string } {
  if (state === 'new') {
    if (command === 'CREATE') return { next: 'pendingFunding' };
    if (command === 'REQUEST') return { next: 'requested' };
    return { code: 'NOT_FOUND', reason: 'MILESTONE_NOT_FOUND' };
  }
  const refusal = WHO_MAY[command]!(role);
  if (refusal) return { code: 'PERMISSION_DENIED', reason: refusal };
  const next = legalNext(state, command);
  return next ? { next } : { code: 'FAILED_PRECONDITION', reason: 'ILLEGAL_IN_STATUS' };
}

function outcome(d: Decision<MilestoneContext>) {
  if (d.kind === 'rejected') return { code: d.rejection.code, reason: d.rejection.reason };
  if (d.kind === 'accepted') return { next: d.next.state };
  return { unchanged: true };
}

describe('milestone machine: every state x command x role', () => {
  const cases = STATES.flatMap((state) => COMMANDS.flatMap((command) => (Object.keys(ROLES) as Role[]).map((role) => ({ state, command, role }))));
  it.each(cases)('$state / $command.name / $role', ({ state, command, role }) => {
    const d = decide(milestoneMachine, { state, context: contextIn(state) }, command.event(ROLES[role]));
    expect(outcome(d)).toEqual(expected(state, command.name, role));
  });
  it('covers all combinations', () => expect(cases).toHaveLength(STATES.length * COMMANDS.length * 4));
});

describe('milestone machine: requests and cancellation requests', () => {
  it('a request makes the caller the freelancer and holds nothing', () => {
    const d = decide(milestoneMachine, { state: 'new', context: initialMilestoneContext }, COMMANDS.find((c) => c.name === 'REQUEST')!.event(FREELANCER));
    if (d.kind !== 'accepted') throw new Error('request refused');
    expect(d.next.context).toMatchObject({ employerId: EMPLOYER, freelancerId: FREELANCER, held: '0.00', amount: '10.00' });
    expect(d.emitted).toEqual({ type: 'requested', data: { amount: '10.00' } });
  });

  it('accepting a request asks the ledger for the hold, like a create', () => {
    const d = decide(milestoneMachine, { state: 'requested', context: contextIn('requested') }, { type: 'ACCEPT_REQUEST', by: caller(EMPLOYER), at: AT });
    if (d.kind !== 'accepted') throw new Error('accept refused');
    expect(d.next.state).toBe('pendingFunding');
    expect(d.emitted).toEqual({ type: 'request_accepted', data: { amount: '10.00' } });
  });

  it.each([
    ['funded', 'funded'],
    ['releaseRequested', 'releaseRequested'],
  ] as const)('a rejected cancellation request from %s goes back to %s', (from, back) => {
    const asked = decide(milestoneMachine, { state: from, context: contextIn(from) }, { type: 'REQUEST_CANCELLATION', by: caller(EMPLOYER), at: AT, reason: 'other' });
    if (asked.kind !== 'accepted') throw new Error('request refused');
    const rejected = decide(milestoneMachine, asked.next, { type: 'REJECT_CANCELLATION', by: caller(FREELANCER), at: AT });
    if (rejected.kind !== 'accepted') throw new Error('rejection refused');
    expect(rejected.next.state).toBe(back);
    expect(rejected.next.context.held).toBe('10.00');
  });
});

describe('milestone machine: money', () => {
  const funded = { state: 'funded', context: contextIn('funded') };
  const release = (amount: string, currency = 'USD'): MilestoneEvent => ({ type: 'RELEASE', by: caller(EMPLOYER), at: AT, amount, currency });

  it('a partial release keeps the rest held and emits partially_released', () => {
    const d = decide(milestoneMachine, funded, release('4.00'));
    expect(d.kind).toBe('accepted');
    if (d.kind !== 'accepted') return;
    expect(d.next.context).toMatchObject({ held: '6.00', released: '4.00', returned: '0.00' });
    expect(d.emitted).toEqual({ type: 'partially_released', data: { amount: '4.00', held: '6.00' } });
  });

  it('a release above what is held is refused', () => {
    expect(outcome(decide(milestoneMachine, funded, release('10.01')))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'AMOUNT_EXCEEDS_HELD' });
  });

  it('a release in another currency is refused', () => {
    expect(outcome(decide(milestoneMachine, funded, release('1', 'JPY')))).toEqual({ code: 'INVALID_ARGUMENT', reason: 'CURRENCY_MISMATCH' });
  });

  it('cancel after a partial release returns only what is still held', () => {
    const p = decide(milestoneMachine, funded, release('3.00'));
    if (p.kind !== 'accepted') throw new Error('partial release refused');
    const cancel: MilestoneEvent = { type: 'CANCEL', by: caller(FREELANCER), at: AT, reason: '', awardAccepted: true };
    const c = decide(milestoneMachine, p.next, cancel);
    if (c.kind !== 'accepted') throw new Error('cancel refused');
    expect(c.next.state).toBe('cancelled');
    expect(c.next.context).toMatchObject({ held: '0.00', released: '3.00', returned: '7.00' });
    expect(c.emitted.data.amount).toBe('7.00');
  });

  it('conserves money on random walks: amount = held + released + returned after every step', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let walk = 0; walk < 200; walk++) {
      let at = { state: 'funded', context: contextIn('funded') };
      for (let step = 0; step < 12; step++) {
        const who = rand() < 0.5 ? EMPLOYER : FREELANCER;
        const pick = rand();
        const cents = Math.floor(rand() * 1200);
        const event: MilestoneEvent =
          pick < 0.5
            ? { type: 'RELEASE', by: caller(who), at: AT, amount: new Decimal(cents).div(100).toFixed(2), currency: 'USD' }
            : pick < 0.6
              ? { type: 'CANCEL', by: caller(who), at: AT, reason: '', awardAccepted: rand() < 0.5 }
              : pick < 0.8
                ? { type: 'REQUEST_RELEASE', by: caller(who), at: AT }
                : { type: 'REQUEST_CANCELLATION', by: caller(who), at: AT, reason: '' };
        const d = decide(milestoneMachine, at, event);
        if (d.kind === 'accepted') at = d.next;
        const c = at.context;
        expect(new Decimal(c.held).plus(c.released).plus(c.returned).toFixed(2)).toBe('10.00');
        expect(new Decimal(c.held).gte(0)).toBe(true);
      }
    }
  });
});
