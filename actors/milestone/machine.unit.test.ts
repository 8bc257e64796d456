import { describe, expect, it } from 'vitest';
import type { Decision } from '../decide.js';
import {
  DISPUTE_STATES,
  FINAL_STATES,
  HOLDING_STATES,
  decideMilestone,
  initialMilestoneContext,
  TIMER_STATES,
  type MilestoneContext,
  type MilestoneEvent,
} from './index.js';
import { Decimal } from 'decimal.js';
import { DEFAULT_TERMS } from '../terms.js';

const AT = '2026-12-01T00:00:00.000Z';
const EMPLOYER = 'emp';
const FREELANCER = 'fl';
const ROLES = {
  employer: EMPLOYER,
  freelancer: FREELANCER,
  stranger: 'someone-else',
  system: 'system',
  arbiter: 'arb',
  support: 'sup',
} as const;
type Role = keyof typeof ROLES;

const STATES = [
  'new',
  'requested',
  'requestRejected',
  'requestWithdrawn',
  'pendingFunding',
  'fundingFailed',
  'funded',
  'releaseRequested',
  'cancellationRequested',
  'released',
  'cancelled',
  'disputed',
  'escalating',
  'awaitingFee',
  'payingFee',
  'arbitration',
  'resolved',
  'frozen',
] as const;
const LONG_AGO = '2026-11-01T00:00:00.000Z';
const SOON = '2026-12-01T01:00:00.000Z';
const DISPUTE = {
  filerId: FREELANCER,
  respondentId: EMPLOYER,
  reason: 'not paid',
  claim: '6.00',
  openedAt: LONG_AGO,
  answered: false,
  proposal: { byId: EMPLOYER, freelancerAmount: '5.00' },
  escalatedBy: '',
  arbitrationFee: '0.00',
  escalationFailureReason: '',
  proposalsBy: {},
  escalationsBy: {},
  outcome: '' as const,
  freelancerAmount: '',
  openedFrom: 'releaseRequested' as const,
  autoReleaseLeftMs: 600_000,
  number: 1,
};
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
  if (['requested', 'requestRejected', 'requestWithdrawn', 'pendingFunding', 'fundingFailed'].includes(state))
    return { ...base, held: '0.00' };
  // The fixture's timers are not due yet at AT (see the deadline tests below for after): auto-release after a release request, the response deadline of a dispute.
  const autoRelease = { dueAt: SOON, dueKind: 'auto_release' as const };
  if (state === 'releaseRequested') return { ...base, ...autoRelease };
  if (state === 'cancellationRequested') return { ...base, ...autoRelease, stateBeforeCancellationRequest: 'releaseRequested' };
  if (state === 'released') return { ...base, held: '0.00', released: '10.00' };
  if (state === 'cancelled') return { ...base, held: '0.00', returned: '10.00' };
  if (state === 'disputed') return { ...base, dueAt: SOON, dueKind: 'dispute_response', dispute: DISPUTE };
  if (state === 'escalating') return { ...base, dispute: { ...DISPUTE, escalatedBy: EMPLOYER } };
  if (state === 'arbitration') return { ...base, dispute: { ...DISPUTE, escalatedBy: EMPLOYER } };
  // The employer escalated and paid; the freelancer's fee is due (not yet at AT), then being charged.
  if (state === 'awaitingFee') return { ...base, dueAt: SOON, dueKind: 'arbitration_fee', dispute: { ...DISPUTE, escalatedBy: EMPLOYER } };
  if (state === 'payingFee')
    return { ...base, dueAt: SOON, dueKind: 'arbitration_fee', dispute: { ...DISPUTE, escalatedBy: EMPLOYER, secondFee: '5.00' } };
  // Frozen from a release request, its review window stopped with 10 minutes left.
  if (state === 'frozen')
    return {
      ...base,
      frozen: { from: 'releaseRequested', reason: 'fraud check', byId: ROLES.support, at: AT, dueKind: 'auto_release', dueLeftMs: 600_000 },
    };
  if (state === 'resolved')
    return {
      ...base,
      held: '0.00',
      released: '5.00',
      returned: '5.00',
      dispute: { ...DISPUTE, outcome: 'settled', freelancerAmount: '5.00' },
    };
  return base;
}

/** What the employer's account actor reserved for a 10.00 milestone with no employer fee. */
const RESERVED = { reservationId: 'r1', reserved: '10.00', fundingFailure: '' };
type CommandCase = { name: string; event: (by: string) => MilestoneEvent };
const caller = (id: string) => ({ id, roles: id === ROLES.arbiter ? ['arbiter'] : id === ROLES.support ? ['support'] : [] });
const COMMANDS: CommandCase[] = [
  {
    name: 'CREATE',
    event: (by) => ({
      type: 'CREATE',
      by: caller(by),
      at: AT,
      milestoneId: 'm1',
      projectId: 'p1',
      freelancerId: FREELANCER,
      currency: 'USD',
      amount: '10.00',
      description: '',
      milestoneReason: '',
      terms: DEFAULT_TERMS,
      ...RESERVED,
    }),
  },
  {
    name: 'REQUEST',
    event: (by) => ({
      type: 'REQUEST',
      by: caller(by),
      at: AT,
      milestoneId: 'm1',
      projectId: 'p1',
      employerId: EMPLOYER,
      currency: 'USD',
      amount: '10.00',
      description: '',
      milestoneReason: '',
      terms: DEFAULT_TERMS,
    }),
  },
  { name: 'ACCEPT_REQUEST', event: (by) => ({ type: 'ACCEPT_REQUEST', by: caller(by), at: AT, ...RESERVED }) },
  { name: 'REJECT_REQUEST', event: (by) => ({ type: 'REJECT_REQUEST', by: caller(by), at: AT }) },
  { name: 'WITHDRAW_REQUEST', event: (by) => ({ type: 'WITHDRAW_REQUEST', by: caller(by), at: AT }) },
  { name: 'REJECT_CANCELLATION', event: (by) => ({ type: 'REJECT_CANCELLATION', by: caller(by), at: AT }) },
  { name: 'FUNDING_SUCCEEDED', event: (by) => ({ type: 'FUNDING_SUCCEEDED', by: caller(by), at: AT }) },
  { name: 'FUNDING_FAILED', event: (by) => ({ type: 'FUNDING_FAILED', by: caller(by), at: AT, reason: 'INSUFFICIENT_FUNDS' }) },
  { name: 'REQUEST_RELEASE', event: (by) => ({ type: 'REQUEST_RELEASE', by: caller(by), at: AT }) },
  {
    name: 'UPDATE_DESCRIPTION',
    event: (by) => ({ type: 'UPDATE_DESCRIPTION', by: caller(by), at: AT, description: 'two pages, not one' }),
  },
  { name: 'REQUEST_CHANGES', event: (by) => ({ type: 'REQUEST_CHANGES', by: caller(by), at: AT, reason: 'the logo is blurry' }) },
  { name: 'RELEASE', event: (by) => ({ type: 'RELEASE', by: caller(by), at: AT, amount: '', currency: '' }) },
  { name: 'RELEASE_PARTIAL', event: (by) => ({ type: 'RELEASE', by: caller(by), at: AT, amount: '4.00', currency: 'USD' }) },
  {
    name: 'REQUEST_CANCELLATION',
    event: (by) => ({ type: 'REQUEST_CANCELLATION', by: caller(by), at: AT, reasonCode: 'OTHER', reason: 'other' }),
  },
  {
    name: 'CANCEL_BEFORE_AWARD',
    event: (by) => ({ type: 'CANCEL', by: caller(by), at: AT, reasonCode: '', reason: '', awardAccepted: false }),
  },
  {
    name: 'CANCEL_AFTER_AWARD',
    event: (by) => ({ type: 'CANCEL', by: caller(by), at: AT, reasonCode: '', reason: '', awardAccepted: true }),
  },
  {
    name: 'OPEN_DISPUTE',
    event: (by) => ({ type: 'OPEN_DISPUTE', by: caller(by), at: AT, reason: 'late', currency: 'USD', claim: '6.00' }),
  },
  {
    name: 'PROPOSE_SETTLEMENT',
    event: (by) => ({ type: 'PROPOSE_SETTLEMENT', by: caller(by), at: AT, currency: 'USD', freelancerAmount: '4.00' }),
  },
  {
    name: 'ACCEPT_SETTLEMENT',
    event: (by) => ({ type: 'ACCEPT_SETTLEMENT', by: caller(by), at: AT, expectedFreelancerAmount: '', expectedCurrency: '' }),
  },
  { name: 'ESCALATE', event: (by) => ({ type: 'ESCALATE', by: caller(by), at: AT, available: '' }) },
  { name: 'PAY_ARBITRATION_FEE', event: (by) => ({ type: 'PAY_ARBITRATION_FEE', by: caller(by), at: AT, available: '' }) },
  { name: 'WITHDRAW_DISPUTE', event: (by) => ({ type: 'WITHDRAW_DISPUTE', by: caller(by), at: AT }) },
  { name: 'ACCEPT_CLAIM', event: (by) => ({ type: 'ACCEPT_CLAIM', by: caller(by), at: AT }) },
  {
    name: 'ATTACH_EVIDENCE',
    event: (by) => ({
      type: 'ATTACH_EVIDENCE',
      by: caller(by),
      at: AT,
      uri: 'https://files.example/a.pdf',
      sha256: 'a'.repeat(64),
      note: '',
    }),
  },
  { name: 'FREEZE', event: (by) => ({ type: 'FREEZE', by: caller(by), at: AT, reason: 'fraud check' }) },
  { name: 'UNFREEZE', event: (by) => ({ type: 'UNFREEZE', by: caller(by), at: AT, reason: 'cleared' }) },
  { name: 'ESCALATION_SUCCEEDED', event: (by) => ({ type: 'ESCALATION_SUCCEEDED', by: caller(by), at: AT }) },
  { name: 'ESCALATION_FAILED', event: (by) => ({ type: 'ESCALATION_FAILED', by: caller(by), at: AT, reason: 'INSUFFICIENT_FUNDS' }) },
  { name: 'ARBITRATION_FEE_PAID', event: (by) => ({ type: 'ARBITRATION_FEE_PAID', by: caller(by), at: AT }) },
  {
    name: 'ARBITRATION_FEE_FAILED',
    event: (by) => ({ type: 'ARBITRATION_FEE_FAILED', by: caller(by), at: AT, reason: 'INSUFFICIENT_FUNDS' }),
  },
  { name: 'RESOLVE', event: (by) => ({ type: 'RESOLVE', by: caller(by), at: AT, currency: 'USD', freelancerAmount: '7.00' }) },
  { name: 'DEADLINE', event: (by) => ({ type: 'DEADLINE', by: caller(by), at: AT }) },
];
const party = (r: Role) => (r === 'employer' || r === 'freelancer' ? null : 'NOT_PARTY');
const system = (r: Role) => (r === 'system' ? null : 'SYSTEM_ONLY');

// Who may send each command (the API table of docs/api.md), written out independently of the machine.
const WHO_MAY: Record<string, (role: Role) => string | null> = {
  CREATE: () => null,
  REQUEST: () => null,
  ACCEPT_REQUEST: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  REJECT_REQUEST: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  WITHDRAW_REQUEST: (r) => (r === 'freelancer' ? null : 'NOT_FREELANCER'),
  REJECT_CANCELLATION: (r) => (r === 'freelancer' ? null : 'NOT_FREELANCER'),
  FUNDING_SUCCEEDED: system,
  FUNDING_FAILED: system,
  OPEN_DISPUTE: party,
  PROPOSE_SETTLEMENT: party,
  ACCEPT_SETTLEMENT: party,
  ESCALATE: party,
  PAY_ARBITRATION_FEE: party,
  WITHDRAW_DISPUTE: party,
  ACCEPT_CLAIM: party,
  ATTACH_EVIDENCE: party,
  FREEZE: (r) => (r === 'support' ? null : 'NOT_SUPPORT'),
  UNFREEZE: (r) => (r === 'support' ? null : 'NOT_SUPPORT'),
  ESCALATION_SUCCEEDED: system,
  ESCALATION_FAILED: system,
  ARBITRATION_FEE_PAID: system,
  ARBITRATION_FEE_FAILED: system,
  RESOLVE: (r) => (r === 'arbiter' ? null : 'NOT_ARBITER'),
  DEADLINE: system,
  REQUEST_RELEASE: (r) => (r === 'freelancer' ? null : 'NOT_FREELANCER'),
  RELEASE: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  REQUEST_CHANGES: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  UPDATE_DESCRIPTION: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  RELEASE_PARTIAL: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  REQUEST_CANCELLATION: (r) => (r === 'employer' ? null : 'NOT_EMPLOYER'),
  CANCEL_BEFORE_AWARD: (r) => (r === 'freelancer' || r === 'employer' ? null : 'NOT_PARTY'),
  CANCEL_AFTER_AWARD: (r) => (r === 'freelancer' ? null : r === 'employer' ? 'AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL' : 'NOT_PARTY'),
};
const HOLDING: State[] = ['funded', 'releaseRequested', 'cancellationRequested'];
const TIMERS: State[] = ['releaseRequested', 'cancellationRequested', 'disputed', 'awaitingFee'];
const FINAL: State[] = ['requestRejected', 'requestWithdrawn', 'fundingFailed', 'released', 'cancelled', 'resolved'];

describe("the machine's kinds of state (its tags and final states)", () => {
  // This table's own model, written out, against the marks the runtime, ledger and auditor read.
  it('are the ones this table expects', () => {
    expect([...HOLDING_STATES].filter((s) => !DISPUTE_STATES.has(s)).sort()).toEqual([...HOLDING, 'frozen'].sort());
    expect([...DISPUTE_STATES].sort()).toEqual(['arbitration', 'awaitingFee', 'disputed', 'escalating', 'payingFee']);
    expect([...TIMER_STATES].sort()).toEqual([...TIMERS].sort());
    expect([...FINAL_STATES].sort()).toEqual([...FINAL].sort());
  });
});
/** Refusals past the party rule that depend on the fixture. */
function refusedInState(state: State, command: string, role: Role): { code: string; reason: string } | null {
  // Frozen: every command but the unfreeze is refused, whoever may otherwise send it.
  if (state === 'frozen' && command !== 'UNFREEZE') return { code: 'FAILED_PRECONDITION', reason: 'MILESTONE_FROZEN' };
  const open = state === 'disputed' || state === 'awaitingFee' || state === 'arbitration';
  // The standing proposal is the employer's: only the freelancer may accept it.
  if (open && command === 'ACCEPT_SETTLEMENT' && role === 'employer') return { code: 'FAILED_PRECONDITION', reason: 'OWN_PROPOSAL' };
  // The fixture's filer is the freelancer, its respondent the employer.
  if (state === 'disputed' && command === 'WITHDRAW_DISPUTE' && role === 'employer')
    return { code: 'PERMISSION_DENIED', reason: 'NOT_FILER' };
  if (open && command === 'ACCEPT_CLAIM' && role === 'freelancer') return { code: 'PERMISSION_DENIED', reason: 'NOT_RESPONDENT' };
  // The fixture's escalating party is the employer: it paid, the freelancer's fee is due.
  if (state === 'awaitingFee' && command === 'PAY_ARBITRATION_FEE' && role === 'employer')
    return { code: 'FAILED_PRECONDITION', reason: 'FEE_ALREADY_PAID' };
  // The fixture's timers run but are not due.
  if (TIMERS.includes(state) && command === 'DEADLINE') return { code: 'FAILED_PRECONDITION', reason: 'NOT_DUE' };
  return null;
}
function legalNext(state: State, command: string): State | null {
  // Support staff freeze any state holding money with no saga under way; the fixture was frozen from RELEASE_REQUESTED.
  if (command === 'FREEZE') return [...HOLDING, 'disputed', 'awaitingFee', 'arbitration'].includes(state) ? 'frozen' : null;
  if (state === 'frozen') return command === 'UNFREEZE' ? 'releaseRequested' : null;
  if (state === 'disputed') {
    if (command === 'PROPOSE_SETTLEMENT') return 'disputed';
    if (command === 'ACCEPT_SETTLEMENT') return 'resolved';
    // The fixture's negotiation window has passed and arbitration costs nothing.
    if (command === 'ESCALATE') return 'arbitration';
    // The fixture's dispute was opened from RELEASE_REQUESTED: a withdrawal goes back there.
    if (command === 'WITHDRAW_DISPUTE') return 'releaseRequested';
    if (command === 'ACCEPT_CLAIM') return 'resolved';
    if (command === 'ATTACH_EVIDENCE') return 'disputed';
    return null;
  }
  if (state === 'arbitration') {
    // The parties may still settle: a proposal, its acceptance, or the claim conceded.
    if (command === 'PROPOSE_SETTLEMENT' || command === 'ATTACH_EVIDENCE') return 'arbitration';
    if (command === 'ACCEPT_SETTLEMENT' || command === 'ACCEPT_CLAIM' || command === 'RESOLVE') return 'resolved';
    return null;
  }
  if (state === 'awaitingFee') {
    // Until the deadline the parties may still settle; the other party's fee starts its charge.
    if (command === 'PROPOSE_SETTLEMENT' || command === 'ATTACH_EVIDENCE') return 'awaitingFee';
    if (command === 'ACCEPT_SETTLEMENT' || command === 'ACCEPT_CLAIM') return 'resolved';
    if (command === 'PAY_ARBITRATION_FEE') return 'payingFee';
    return null;
  }
  if (state === 'payingFee' && command === 'ARBITRATION_FEE_PAID') return 'arbitration';
  if (state === 'payingFee' && command === 'ARBITRATION_FEE_FAILED') return 'awaitingFee';
  // The fixture's terms ask the escalating party only.
  if (state === 'escalating' && command === 'ESCALATION_SUCCEEDED') return 'arbitration';
  if (state === 'escalating' && command === 'ESCALATION_FAILED') return 'disputed';
  if (HOLDING.includes(state) && command === 'OPEN_DISPUTE') return 'disputed';

  if (state === 'requested' && command === 'ACCEPT_REQUEST') return 'funded';
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
  if (command === 'REQUEST_CHANGES' && state === 'releaseRequested') return 'funded';
  // A correction of the description keeps the state (and is not made during a dispute, whose claim it describes).
  if (command === 'UPDATE_DESCRIPTION') return state;
  if (command === 'REQUEST_CANCELLATION' && state !== 'cancellationRequested') return 'cancellationRequested';
  return null;
}

function expected(state: State, command: string, role: Role): { next: State } | { code: string; reason: string } {
  if (state === 'new') {
    if (command === 'CREATE') return { next: 'funded' };
    if (command === 'REQUEST') return { next: 'requested' };
    return { code: 'NOT_FOUND', reason: 'MILESTONE_NOT_FOUND' };
  }
  const refusal = WHO_MAY[command]!(role);
  if (refusal) return { code: 'PERMISSION_DENIED', reason: refusal };
  const inState = refusedInState(state, command, role);
  if (inState) return inState;
  const next = legalNext(state, command);
  return next ? { next } : { code: 'FAILED_PRECONDITION', reason: 'ILLEGAL_IN_STATUS' };
}

function outcome(d: Decision<MilestoneContext>) {
  if (d.kind === 'rejected') return { code: d.rejection.code, reason: d.rejection.reason };
  if (d.kind === 'accepted') return { next: d.next.state };
  return { unchanged: true };
}

describe('milestone machine: every state x command x role', () => {
  const cases = STATES.flatMap((state) =>
    COMMANDS.flatMap((command) => (Object.keys(ROLES) as Role[]).map((role) => ({ state, command, role }))),
  );
  it.each(cases)('$state / $command.name / $role', ({ state, command, role }) => {
    const d = decideMilestone({ state, context: contextIn(state) }, command.event(ROLES[role]));
    expect(outcome(d)).toEqual(expected(state, command.name, role));
  });
  it('covers all combinations', () => expect(cases).toHaveLength(STATES.length * COMMANDS.length * 6));
});

describe('milestone machine: requests and cancellation requests', () => {
  it('a request makes the caller the freelancer and holds nothing', () => {
    const d = decideMilestone(
      { state: 'new', context: initialMilestoneContext },
      COMMANDS.find((c) => c.name === 'REQUEST')!.event(FREELANCER),
    );
    if (d.kind !== 'accepted') throw new Error('request refused');
    expect(d.next.context).toMatchObject({ employerId: EMPLOYER, freelancerId: FREELANCER, held: '0.00', amount: '10.00' });
    expect(d.emitted).toEqual({ type: 'requested', data: { amount: '10.00' } });
  });

  it('accepting a request is funded from the reservation, like a create', () => {
    const d = decideMilestone(
      { state: 'requested', context: contextIn('requested') },
      { type: 'ACCEPT_REQUEST', by: caller(EMPLOYER), at: AT, ...RESERVED },
    );
    if (d.kind !== 'accepted') throw new Error('accept refused');
    expect(d.next.state).toBe('funded');
    expect(d.next.context).toMatchObject({ held: '10.00', reservationId: 'r1' });
    expect(d.emitted).toEqual({ type: 'request_accepted', data: { amount: '10.00', employerFee: '0', reservationId: 'r1' } });
  });

  it('an accept the account refused ends the request without money; a reservation of another amount is refused', () => {
    const refused = decideMilestone(
      { state: 'requested', context: contextIn('requested') },
      { type: 'ACCEPT_REQUEST', by: caller(EMPLOYER), at: AT, reservationId: '', reserved: '0', fundingFailure: 'INSUFFICIENT_FUNDS' },
    );
    expect(outcome(refused)).toEqual({ next: 'fundingFailed' });
    const short = decideMilestone(
      { state: 'requested', context: contextIn('requested') },
      { type: 'ACCEPT_REQUEST', by: caller(EMPLOYER), at: AT, ...RESERVED, reserved: '9.99' },
    );
    expect(outcome(short)).toEqual({ code: 'FAILED_PRECONDITION', reason: 'RESERVATION_MISMATCH' });
  });

  it.each([
    ['funded', 'funded'],
    ['releaseRequested', 'releaseRequested'],
  ] as const)('a rejected cancellation request from %s goes back to %s', (from, back) => {
    const asked = decideMilestone(
      { state: from, context: contextIn(from) },
      { type: 'REQUEST_CANCELLATION', by: caller(EMPLOYER), at: AT, reasonCode: 'OTHER', reason: 'other' },
    );
    if (asked.kind !== 'accepted') throw new Error('request refused');
    const rejected = decideMilestone(asked.next, { type: 'REJECT_CANCELLATION', by: caller(FREELANCER), at: AT });
    if (rejected.kind !== 'accepted') throw new Error('rejection refused');
    expect(rejected.next.state).toBe(back);
    expect(rejected.next.context.held).toBe('10.00');
  });
});

describe('milestone machine: money', () => {
  const funded = { state: 'funded', context: contextIn('funded') };
  const release = (amount: string, currency = 'USD'): MilestoneEvent => ({
    type: 'RELEASE',
    by: caller(EMPLOYER),
    at: AT,
    amount,
    currency,
  });

  it('a partial release keeps the rest held and emits partially_released', () => {
    const d = decideMilestone(funded, release('4.00'));
    expect(d.kind).toBe('accepted');
    if (d.kind !== 'accepted') return;
    expect(d.next.context).toMatchObject({ held: '6.00', released: '4.00', returned: '0.00' });
    expect(d.emitted).toEqual({ type: 'partially_released', data: { amount: '4.00', held: '6.00', fee: '0.00' } });
  });

  it('a release above what is held is refused', () => {
    expect(outcome(decideMilestone(funded, release('10.01')))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'AMOUNT_EXCEEDS_HELD',
    });
  });

  it('a release in another currency is refused', () => {
    expect(outcome(decideMilestone(funded, release('1', 'JPY')))).toEqual({
      code: 'INVALID_ARGUMENT',
      reason: 'CURRENCY_MISMATCH',
    });
  });

  it('cancel after a partial release returns only what is still held', () => {
    const p = decideMilestone(funded, release('3.00'));
    if (p.kind !== 'accepted') throw new Error('partial release refused');
    const cancel: MilestoneEvent = { type: 'CANCEL', by: caller(FREELANCER), at: AT, reasonCode: '', reason: '', awardAccepted: true };
    const c = decideMilestone(p.next, cancel);
    if (c.kind !== 'accepted') throw new Error('cancel refused');
    expect(c.next.state).toBe('cancelled');
    expect(c.next.context).toMatchObject({ held: '0.00', released: '3.00', returned: '7.00' });
    expect(c.emitted.data.amount).toBe('7.00');
  });

  it('conserves money on random walks: amount = held + released + returned after every step', () => {
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
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
              ? { type: 'CANCEL', by: caller(who), at: AT, reasonCode: '', reason: '', awardAccepted: rand() < 0.5 }
              : pick < 0.8
                ? { type: 'REQUEST_RELEASE', by: caller(who), at: AT }
                : { type: 'REQUEST_CANCELLATION', by: caller(who), at: AT, reasonCode: 'OTHER', reason: '' };
        const d = decideMilestone(at, event);
        if (d.kind === 'accepted') at = d.next;
        const c = at.context;
        expect(new Decimal(c.held).plus(c.released).plus(c.returned).toFixed(2)).toBe('10.00');
        expect(new Decimal(c.held).gte(0)).toBe(true);
      }
    }
  });
});

describe('milestone machine: fees, disputes and timers', () => {
  const terms = {
    ...DEFAULT_TERMS,
    employerFee: { percent: '3', minimum: '0.50' },
    freelancerFee: { percent: '10', minimum: '2.00' },
    arbitrationFee: '5.00',
    reviewWindowMs: 3_600_000,
  };
  const create: MilestoneEvent = {
    type: 'CREATE',
    by: caller(EMPLOYER),
    at: AT,
    milestoneId: 'm1',
    projectId: 'p1',
    freelancerId: FREELANCER,
    currency: 'USD',
    amount: '100.00',
    description: '',
    milestoneReason: '',
    terms,
    reservationId: 'r1',
    reserved: '103.00',
    fundingFailure: '',
  };
  const step = (at: { state: string; context: MilestoneContext }, e: MilestoneEvent) => {
    const d = decideMilestone(at, e);
    if (d.kind !== 'accepted') throw new Error(`${e.type} not accepted: ${JSON.stringify(d)}`);
    return { ...d.next, emitted: d.emitted };
  };
  const sys = caller('system');
  const funded = () => step({ state: 'new', context: initialMilestoneContext }, create);
  const inHours = (h: number) => new Date(Date.parse(AT) + h * 3_600_000).toISOString();

  it('charges the employer fee on top at creation, from the terms', () => {
    const c = step({ state: 'new', context: initialMilestoneContext }, create);
    expect(c.emitted.data).toEqual({ amount: '100.00', employerFee: '3.00', reservationId: 'r1' });
    expect(c.context.employerFee).toBe('3.00');
  });

  it('partial releases cost the same freelancer fee as one release', () => {
    const one = step(funded(), { type: 'RELEASE', by: caller(EMPLOYER), at: AT, amount: '', currency: '' });
    expect(one.emitted.data.fee).toBe('10.00');
    let m = funded();
    const fees: string[] = [];
    for (const part of ['5.00', '15.00', '80.00']) {
      m = step(m, { type: 'RELEASE', by: caller(EMPLOYER), at: AT, amount: part, currency: 'USD' });
      fees.push(String(m.emitted.data.fee));
    }
    // 5.00 pays the 2.00 minimum; at 20.00 the minimum is still the fee; the rest is 10 %.
    expect(fees).toEqual(['2.00', '0.00', '8.00']);
    expect(m.context.freelancerFee).toBe('10.00');
    expect(m.state).toBe('released');
  });

  it('auto-releases after the review window, not before', () => {
    const asked = step(funded(), { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: AT });
    expect(asked.context).toMatchObject({ dueKind: 'auto_release', dueAt: inHours(1) });
    expect(outcome(decideMilestone(asked, { type: 'DEADLINE', by: sys, at: inHours(0.5) }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'NOT_DUE',
    });
    const auto = step(asked, { type: 'DEADLINE', by: sys, at: inHours(1) });
    expect(auto.state).toBe('released');
    expect(auto.emitted.data).toMatchObject({ amount: '100.00', fee: '10.00', automatic: true });
    expect(auto.context).toMatchObject({ held: '0.00', released: '100.00', dueAt: '' });
  });

  it('a dispute stops the review window and starts the respondent deadline (14 days for an employer)', () => {
    const asked = step(funded(), { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: AT });
    const open = step(asked, { type: 'OPEN_DISPUTE', by: caller(FREELANCER), at: AT, reason: 'silent', currency: 'USD', claim: '80.00' });
    expect(open.state).toBe('disputed');
    expect(open.context).toMatchObject({ dueKind: 'dispute_response', dueAt: inHours(14 * 24) });
    expect(outcome(decideMilestone(open, { type: 'RELEASE', by: caller(EMPLOYER), at: AT, amount: '', currency: '' }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'ILLEGAL_IN_STATUS',
    });
    // Unanswered: the freelancer's claim of 80 is granted, 20 goes back, the fee is on the 80.
    const granted = step(open, { type: 'DEADLINE', by: sys, at: inHours(14 * 24) });
    expect(granted.state).toBe('resolved');
    expect(granted.emitted.data).toMatchObject({
      amount: '100.00',
      freelancerAmount: '80.00',
      employerAmount: '20.00',
      fee: '8.00',
      outcome: 'claim_granted',
    });
    expect(granted.context).toMatchObject({ held: '0.00', released: '80.00', returned: '20.00' });
  });

  it('an answer by the respondent stops the deadline; the other party accepts a proposal', () => {
    const open = step(funded(), { type: 'OPEN_DISPUTE', by: caller(EMPLOYER), at: AT, reason: 'late', currency: 'USD', claim: '50.00' });
    expect(open.context.dueAt).toBe(inHours(4 * 24));
    const proposed = step(open, { type: 'PROPOSE_SETTLEMENT', by: caller(FREELANCER), at: AT, currency: 'USD', freelancerAmount: '70.00' });
    expect(proposed.context.dueAt).toBe('');
    expect(outcome(decideMilestone(proposed, { type: 'DEADLINE', by: sys, at: inHours(5 * 24) }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'NOT_DUE',
    });
    expect(
      outcome(
        decideMilestone(proposed, {
          type: 'ACCEPT_SETTLEMENT',
          by: caller(FREELANCER),
          at: AT,
          expectedFreelancerAmount: '',
          expectedCurrency: '',
        }),
      ),
    ).toEqual({ code: 'FAILED_PRECONDITION', reason: 'OWN_PROPOSAL' });
    expect(
      outcome(
        decideMilestone(proposed, {
          type: 'ACCEPT_SETTLEMENT',
          by: caller(EMPLOYER),
          at: AT,
          expectedFreelancerAmount: '60.00',
          expectedCurrency: 'USD',
        }),
      ),
    ).toEqual({ code: 'FAILED_PRECONDITION', reason: 'PROPOSAL_CHANGED' });
    const settled = step(proposed, {
      type: 'ACCEPT_SETTLEMENT',
      by: caller(EMPLOYER),
      at: AT,
      expectedFreelancerAmount: '70.00',
      expectedCurrency: 'USD',
    });
    expect(settled.emitted.data).toMatchObject({ freelancerAmount: '70.00', employerAmount: '30.00', fee: '7.00', outcome: 'settled' });
  });

  it('escalation waits for the negotiation window, asks for the fee, and the winner gets it back', () => {
    const open = step(funded(), {
      type: 'OPEN_DISPUTE',
      by: caller(FREELANCER),
      at: AT,
      reason: 'unpaid',
      currency: 'USD',
      claim: '100.00',
    });
    expect(outcome(decideMilestone(open, { type: 'ESCALATE', by: caller(FREELANCER), at: inHours(71), available: '' }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'NEGOTIATION_WINDOW_OPEN',
    });
    // Short of the fee by the balance read just before: refused without an event, no attempt used.
    expect(outcome(decideMilestone(open, { type: 'ESCALATE', by: caller(FREELANCER), at: inHours(72), available: '4.99' }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'INSUFFICIENT_FUNDS',
    });
    const asked = step(open, { type: 'ESCALATE', by: caller(FREELANCER), at: inHours(72), available: '5.00' });
    expect(asked.state).toBe('escalating');
    expect(asked.emitted).toEqual({ type: 'escalation_requested', data: { amount: '5.00', escalatorId: FREELANCER, funding: 'account' } });
    const failed = step(asked, { type: 'ESCALATION_FAILED', by: sys, at: inHours(72), reason: 'INSUFFICIENT_FUNDS' });
    expect(failed.state).toBe('disputed');
    expect(failed.context.dispute?.escalationFailureReason).toBe('INSUFFICIENT_FUNDS');
    const again = step(step(failed, { type: 'ESCALATE', by: caller(FREELANCER), at: inHours(73), available: '' }), {
      type: 'ESCALATION_SUCCEEDED',
      by: sys,
      at: inHours(73),
    });
    expect(again.state).toBe('arbitration');
    expect(
      outcome(
        decideMilestone(again, {
          type: 'RESOLVE',
          by: { id: EMPLOYER, roles: ['arbiter'] },
          at: AT,
          currency: 'USD',
          freelancerAmount: '1.00',
        }),
      ),
    ).toEqual({ code: 'PERMISSION_DENIED', reason: 'ARBITER_IS_PARTY' });
    // The freelancer (filer, claim 100) gets 60 > 50: it won, so its fee is refunded.
    const won = step(again, { type: 'RESOLVE', by: caller(ROLES.arbiter), at: AT, currency: 'USD', freelancerAmount: '60.00' });
    expect(won.emitted.data).toMatchObject({
      freelancerAmount: '60.00',
      employerAmount: '40.00',
      arbitrationFee: '5.00',
      escalatorId: FREELANCER,
      arbitrationFeeRefunded: true,
    });
    // Exactly half is not more than half: the respondent wins and the fee goes to the platform.
    const lost = step(again, { type: 'RESOLVE', by: caller(ROLES.arbiter), at: AT, currency: 'USD', freelancerAmount: '50.00' });
    expect(lost.emitted.data).toMatchObject({ arbitrationFeeRefunded: false });
  });

  it('with both parties asked for the fee: the other pays by the deadline, or the escalating party wins by default', () => {
    const both = step(
      { state: 'new', context: initialMilestoneContext },
      { ...create, terms: { ...terms, arbitrationFeeDeadlineMs: 48 * 3_600_000 } },
    );
    const open = step(both, { type: 'OPEN_DISPUTE', by: caller(FREELANCER), at: AT, reason: 'unpaid', currency: 'USD', claim: '80.00' });
    // The employer (respondent) escalates and pays.
    const asked = step(open, { type: 'ESCALATE', by: caller(EMPLOYER), at: inHours(72), available: '' });
    const awaiting = step(asked, { type: 'ESCALATION_SUCCEEDED', by: sys, at: inHours(72) });
    expect(awaiting.state).toBe('awaitingFee');
    expect(awaiting.context).toMatchObject({ dueKind: 'arbitration_fee', dueAt: inHours(120) });
    expect(awaiting.emitted).toEqual({
      type: 'arbitration_fee_due',
      data: { escalatorId: EMPLOYER, arbitrationFee: '5.00', payerId: FREELANCER, payBy: inHours(120) },
    });
    const pay = (at: string, available = ''): MilestoneEvent => ({ type: 'PAY_ARBITRATION_FEE', by: caller(FREELANCER), at, available });
    // A proposal by the respondent (here the escalating party) answers nothing more: the fee's deadline stays.
    const proposed = step(awaiting, {
      type: 'PROPOSE_SETTLEMENT',
      by: caller(EMPLOYER),
      at: inHours(73),
      currency: 'USD',
      freelancerAmount: '20.00',
    });
    expect(proposed.context).toMatchObject({ dueKind: 'arbitration_fee', dueAt: inHours(120) });
    // Three charges refused by the account: the fourth attempt is refused; escalation attempts are counted apart.
    let tried = proposed;
    for (let i = 0; i < 3; i++)
      tried = step(step(tried, pay(inHours(81 + i))), {
        type: 'ARBITRATION_FEE_FAILED',
        by: sys,
        at: inHours(81 + i),
        reason: 'INSUFFICIENT_FUNDS',
      });
    expect(outcome(decideMilestone(tried, pay(inHours(90))))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'FEE_ATTEMPT_LIMIT' });
    expect(tried.context.dispute?.escalationsBy[FREELANCER] ?? 0).toBe(0);
    expect(outcome(decideMilestone(awaiting, pay(inHours(80), '4.99')))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'INSUFFICIENT_FUNDS',
    });
    // A failed charge leaves the fee due, with nothing of it counted as held.
    const paying = step(awaiting, pay(inHours(80)));
    expect(paying.emitted).toEqual({
      type: 'arbitration_fee_requested',
      data: { amount: '5.00', payerId: FREELANCER, funding: 'account' },
    });
    const failed = step(paying, { type: 'ARBITRATION_FEE_FAILED', by: sys, at: inHours(80), reason: 'INSUFFICIENT_FUNDS' });
    expect(failed.state).toBe('awaitingFee');
    expect(failed.context.dispute).toMatchObject({ secondFee: '0.00', escalationFailureReason: 'INSUFFICIENT_FUNDS' });
    expect(failed.context.dueAt).toBe(inHours(120));
    // Unpaid at the deadline: the respondent that escalated keeps the filer from its claim, and gets its fee back.
    expect(outcome(decideMilestone(failed, pay(inHours(120))))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'FEE_DEADLINE_PASSED' });
    const defaulted = step(failed, { type: 'DEADLINE', by: sys, at: inHours(120) });
    expect(defaulted.state).toBe('resolved');
    expect(defaulted.emitted.data).toEqual({
      amount: '100.00',
      freelancerAmount: '0.00',
      employerAmount: '100.00',
      fee: '0.00',
      outcome: 'fee_unpaid',
      arbitrationFee: '5.00',
      escalatorId: EMPLOYER,
      arbitrationFeeRefunded: true,
    });
    // Paid in time: arbitration with both fees; the arbiter's decision refunds the winner's only.
    const arbitrated = step(step(awaiting, pay(inHours(100))), { type: 'ARBITRATION_FEE_PAID', by: sys, at: inHours(100) });
    expect(arbitrated.state).toBe('arbitration');
    expect(arbitrated.emitted).toEqual({
      type: 'escalated',
      data: { escalatorId: EMPLOYER, arbitrationFee: '5.00', secondFeePayerId: FREELANCER, secondArbitrationFee: '5.00' },
    });
    expect(arbitrated.context.dueKind).toBe('');
    const decided = step(arbitrated, { type: 'RESOLVE', by: caller(ROLES.arbiter), at: AT, currency: 'USD', freelancerAmount: '60.00' });
    expect(decided.emitted.data).toMatchObject({
      arbitrationFee: '5.00',
      escalatorId: EMPLOYER,
      arbitrationFeeRefunded: false,
      secondFeePayerId: FREELANCER,
      secondArbitrationFee: '5.00',
      secondArbitrationFeeRefunded: true,
    });
  });

  it('an escalating filer wins its claim by default', () => {
    const both = step(
      { state: 'new', context: initialMilestoneContext },
      { ...create, terms: { ...terms, arbitrationFeeDeadlineMs: 3_600_000 } },
    );
    const open = step(both, { type: 'OPEN_DISPUTE', by: caller(EMPLOYER), at: AT, reason: 'late', currency: 'USD', claim: '30.00' });
    const awaiting = step(step(open, { type: 'ESCALATE', by: caller(EMPLOYER), at: inHours(72), available: '' }), {
      type: 'ESCALATION_SUCCEEDED',
      by: sys,
      at: inHours(72),
    });
    // The freelancer had not answered: its fee is due when its answer was (4 days from the opening), not an hour after the escalation.
    expect(awaiting.context.dueAt).toBe(inHours(96));
    expect(outcome(decideMilestone(awaiting, { type: 'DEADLINE', by: sys, at: inHours(73) }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'NOT_DUE',
    });
    const defaulted = step(awaiting, { type: 'DEADLINE', by: sys, at: inHours(96) });
    expect(defaulted.emitted.data).toMatchObject({
      freelancerAmount: '70.00',
      employerAmount: '30.00',
      outcome: 'fee_unpaid',
      arbitrationFeeRefunded: true,
    });
  });

  it('a claim above what is held is refused', () => {
    expect(
      outcome(
        decideMilestone(funded(), {
          type: 'OPEN_DISPUTE',
          by: caller(EMPLOYER),
          at: AT,
          reason: 'x',
          currency: 'USD',
          claim: '100.01',
        }),
      ),
    ).toEqual({ code: 'FAILED_PRECONDITION', reason: 'CLAIM_EXCEEDS_HELD' });
  });

  it('after an unanswered deadline only the grant is accepted; after the review window, no cancel or dispute', () => {
    const open = step(funded(), { type: 'OPEN_DISPUTE', by: caller(FREELANCER), at: AT, reason: 'x', currency: 'USD', claim: '10.00' });
    const late = inHours(14 * 24);
    for (const e of [
      { type: 'PROPOSE_SETTLEMENT', by: caller(EMPLOYER), at: late, currency: 'USD', freelancerAmount: '1.00' },
      { type: 'PROPOSE_SETTLEMENT', by: caller(FREELANCER), at: late, currency: 'USD', freelancerAmount: '1.00' },
      { type: 'ESCALATE', by: caller(EMPLOYER), at: late, available: '' },
    ] as MilestoneEvent[]) {
      expect(outcome(decideMilestone(open, e))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'RESPONSE_DEADLINE_PASSED' });
    }
    const proposed = step(open, { type: 'PROPOSE_SETTLEMENT', by: caller(FREELANCER), at: AT, currency: 'USD', freelancerAmount: '9.00' });
    expect(
      outcome(
        decideMilestone(proposed, {
          type: 'ACCEPT_SETTLEMENT',
          by: caller(EMPLOYER),
          at: late,
          expectedFreelancerAmount: '',
          expectedCurrency: '',
        }),
      ),
    ).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'RESPONSE_DEADLINE_PASSED',
    });
    const asked = step(funded(), { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: AT });
    const after = inHours(1);
    for (const e of [
      { type: 'OPEN_DISPUTE', by: caller(EMPLOYER), at: after, reason: 'x', currency: 'USD', claim: '1.00' },
      { type: 'CANCEL', by: caller(FREELANCER), at: after, reasonCode: '', reason: '', awardAccepted: true },
      { type: 'REQUEST_CANCELLATION', by: caller(EMPLOYER), at: after, reasonCode: 'MISSED_DEADLINE', reason: 'late' },
    ] as MilestoneEvent[]) {
      expect(outcome(decideMilestone(asked, e))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'REVIEW_WINDOW_PASSED' });
    }
    // Releasing is still the employer's to do.
    expect(step(asked, { type: 'RELEASE', by: caller(EMPLOYER), at: after, amount: '', currency: '' }).state).toBe('released');
  });

  it('caps proposals and escalation attempts per party, so a dispute has a bounded number of events', () => {
    let m = step(funded(), { type: 'OPEN_DISPUTE', by: caller(FREELANCER), at: AT, reason: 'x', currency: 'USD', claim: '10.00' });
    for (let i = 0; i < 10; i++)
      m = step(m, { type: 'PROPOSE_SETTLEMENT', by: caller(FREELANCER), at: AT, currency: 'USD', freelancerAmount: `${i}.00` });
    expect(
      outcome(
        decideMilestone(m, {
          type: 'PROPOSE_SETTLEMENT',
          by: caller(FREELANCER),
          at: AT,
          currency: 'USD',
          freelancerAmount: '1.00',
        }),
      ),
    ).toEqual({ code: 'FAILED_PRECONDITION', reason: 'PROPOSAL_LIMIT' });
    // The other party's proposals are its own to make.
    m = step(m, { type: 'PROPOSE_SETTLEMENT', by: caller(EMPLOYER), at: AT, currency: 'USD', freelancerAmount: '5.00' });
    const later = inHours(73);
    for (let i = 0; i < 3; i++) {
      m = step(m, { type: 'ESCALATE', by: caller(EMPLOYER), at: later, available: '' });
      m = step(m, { type: 'ESCALATION_FAILED', by: sys, at: later, reason: 'INSUFFICIENT_FUNDS' });
    }
    expect(outcome(decideMilestone(m, { type: 'ESCALATE', by: caller(EMPLOYER), at: later, available: '' }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'ESCALATION_LIMIT',
    });
    expect(step(m, { type: 'ESCALATE', by: caller(FREELANCER), at: later, available: '' }).state).toBe('escalating');
  });

  it('an expected amount in another currency is refused', () => {
    let m = step(funded(), { type: 'OPEN_DISPUTE', by: caller(FREELANCER), at: AT, reason: 'x', currency: 'USD', claim: '10.00' });
    m = step(m, { type: 'PROPOSE_SETTLEMENT', by: caller(EMPLOYER), at: AT, currency: 'USD', freelancerAmount: '5.00' });
    expect(
      outcome(
        decideMilestone(m, {
          type: 'ACCEPT_SETTLEMENT',
          by: caller(FREELANCER),
          at: AT,
          expectedFreelancerAmount: '5',
          expectedCurrency: 'JPY',
        }),
      ),
    ).toEqual({ code: 'INVALID_ARGUMENT', reason: 'CURRENCY_MISMATCH' });
  });
});

describe('milestone machine: withdrawn and conceded disputes, settling in arbitration', () => {
  const terms = { ...DEFAULT_TERMS, freelancerFee: { percent: '10', minimum: '0' }, arbitrationFee: '5.00', reviewWindowMs: 3_600_000 };
  const inMinutes = (m: number) => new Date(Date.parse(AT) + m * 60_000).toISOString();
  const step = (at: { state: string; context: MilestoneContext }, e: MilestoneEvent) => {
    const d = decideMilestone(at, e);
    if (d.kind !== 'accepted') throw new Error(`${e.type} not accepted: ${JSON.stringify(d)}`);
    return { ...d.next, emitted: d.emitted };
  };
  const funded = () =>
    step(
      { state: 'new', context: initialMilestoneContext },
      { ...(COMMANDS[0]!.event(EMPLOYER) as Extract<MilestoneEvent, { type: 'CREATE' }>), amount: '100.00', reserved: '100.00', terms },
    );
  const dispute = (from: { state: string; context: MilestoneContext }, by: string, at = AT, claim = '80.00') =>
    step(from, { type: 'OPEN_DISPUTE', by: caller(by), at, reason: 'x', currency: 'USD', claim });

  it('a withdrawal goes back to the status the dispute came from, the money held, the review window running with the time it had left', () => {
    const asked = step(funded(), { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: AT });
    // 20 of the 60 minutes passed; the dispute stands for 3 days; 40 minutes are left after it.
    const open = dispute(asked, EMPLOYER, inMinutes(20));
    const back = step(open, { type: 'WITHDRAW_DISPUTE', by: caller(EMPLOYER), at: inMinutes(3 * 24 * 60) });
    expect(back.state).toBe('releaseRequested');
    expect(back.context).toMatchObject({ held: '100.00', dueKind: 'auto_release', dueAt: inMinutes(3 * 24 * 60 + 40) });
    expect(back.context.dispute).toMatchObject({ outcome: 'withdrawn', number: 1 });
    expect(back.emitted).toEqual({
      type: 'dispute_withdrawn',
      data: { resumed: 'RELEASE_REQUESTED', autoReleaseAt: inMinutes(3 * 24 * 60 + 40) },
    });
    // The review window ends as it would have: the timer releases.
    expect(step(back, { type: 'DEADLINE', by: caller('system'), at: inMinutes(3 * 24 * 60 + 40) }).state).toBe('released');
  });

  it('from funded, a withdrawal runs no timer; from a cancellation request it keeps where that came from', () => {
    const back = step(dispute(funded(), FREELANCER), { type: 'WITHDRAW_DISPUTE', by: caller(FREELANCER), at: AT });
    expect(back).toMatchObject({ state: 'funded', context: { dueAt: '', dueKind: '' } });
    expect(back.emitted.data).toEqual({ resumed: 'FUNDED' });
    const cancelAsked = step(step(funded(), { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: AT }), {
      type: 'REQUEST_CANCELLATION',
      by: caller(EMPLOYER),
      at: AT,
      reasonCode: 'OTHER',
      reason: '',
    });
    const again = step(dispute(cancelAsked, FREELANCER), { type: 'WITHDRAW_DISPUTE', by: caller(FREELANCER), at: AT });
    expect(again.state).toBe('cancellationRequested');
    expect(again.context.stateBeforeCancellationRequest).toBe('releaseRequested');
    expect(step(again, { type: 'REJECT_CANCELLATION', by: caller(FREELANCER), at: AT }).state).toBe('releaseRequested');
  });

  it('only the filer withdraws, only before an unanswered deadline, and at most three disputes a milestone has', () => {
    const open = dispute(funded(), FREELANCER);
    expect(outcome(decideMilestone(open, { type: 'WITHDRAW_DISPUTE', by: caller(EMPLOYER), at: AT }))).toEqual({
      code: 'PERMISSION_DENIED',
      reason: 'NOT_FILER',
    });
    expect(outcome(decideMilestone(open, { type: 'WITHDRAW_DISPUTE', by: caller(FREELANCER), at: inMinutes(14 * 24 * 60) }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'RESPONSE_DEADLINE_PASSED',
    });
    let m = funded();
    for (let i = 0; i < 3; i++) m = step(dispute(m, EMPLOYER), { type: 'WITHDRAW_DISPUTE', by: caller(EMPLOYER), at: AT });
    expect(m.context.dispute?.number).toBe(3);
    expect(
      outcome(decideMilestone(m, { type: 'OPEN_DISPUTE', by: caller(FREELANCER), at: AT, reason: 'x', currency: 'USD', claim: '1.00' })),
    ).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'DISPUTE_LIMIT',
    });
  });

  it("the respondent's concession grants the claim at once: to the freelancer as filer, back to the employer as filer", () => {
    const byFreelancer = step(dispute(funded(), FREELANCER), { type: 'ACCEPT_CLAIM', by: caller(EMPLOYER), at: AT });
    expect(byFreelancer.state).toBe('resolved');
    expect(byFreelancer.emitted.data).toMatchObject({
      freelancerAmount: '80.00',
      employerAmount: '20.00',
      fee: '8.00',
      outcome: 'claim_accepted',
    });
    expect(byFreelancer.context).toMatchObject({ held: '0.00', released: '80.00', returned: '20.00' });
    const byEmployer = step(dispute(funded(), EMPLOYER), { type: 'ACCEPT_CLAIM', by: caller(FREELANCER), at: AT });
    expect(byEmployer.emitted.data).toMatchObject({ freelancerAmount: '20.00', employerAmount: '80.00', outcome: 'claim_accepted' });
    expect(outcome(decideMilestone(dispute(funded(), EMPLOYER), { type: 'ACCEPT_CLAIM', by: caller(EMPLOYER), at: AT }))).toEqual({
      code: 'PERMISSION_DENIED',
      reason: 'NOT_RESPONDENT',
    });
  });

  it('evidence: up to five references per party and dispute, emptied when another dispute opens', () => {
    const attach = (by: string, i: number): MilestoneEvent => ({
      type: 'ATTACH_EVIDENCE',
      by: caller(by),
      at: AT,
      uri: `https://files.example/${i}`,
      sha256: 'b'.repeat(64),
      note: `item ${i}`,
    });
    let m = dispute(funded(), FREELANCER);
    for (let i = 0; i < 5; i++) m = step(m, attach(FREELANCER, i));
    expect(outcome(decideMilestone(m, attach(FREELANCER, 5)))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'EVIDENCE_LIMIT' });
    m = step(m, attach(EMPLOYER, 9));
    expect(m.context.evidence).toHaveLength(6);
    expect(m.context.evidence[5]).toMatchObject({ byId: EMPLOYER, uri: 'https://files.example/9', note: 'item 9' });
    expect(m.emitted).toEqual({
      type: 'evidence_attached',
      data: { uri: 'https://files.example/9', sha256: 'b'.repeat(64), note: 'item 9' },
    });
    const again = dispute(step(m, { type: 'WITHDRAW_DISPUTE', by: caller(FREELANCER), at: AT }), EMPLOYER);
    expect(again.context.evidence).toEqual([]);
  });

  it('in arbitration the parties may still settle or concede; the escalation fee follows who won', () => {
    const open = dispute(funded(), FREELANCER);
    const later = inMinutes(3 * 24 * 60);
    const asked = step(open, { type: 'ESCALATE', by: caller(EMPLOYER), at: later, available: '' });
    const arbitration = step(asked, { type: 'ESCALATION_SUCCEEDED', by: caller('system'), at: later });
    expect(arbitration.state).toBe('arbitration');
    // The freelancer (filer) proposes 30 in arbitration; the employer (escalator) accepts: 30 <= 40, the employer won its fee back.
    const proposed = step(arbitration, {
      type: 'PROPOSE_SETTLEMENT',
      by: caller(FREELANCER),
      at: later,
      currency: 'USD',
      freelancerAmount: '30.00',
    });
    expect(proposed.state).toBe('arbitration');
    const settled = step(proposed, {
      type: 'ACCEPT_SETTLEMENT',
      by: caller(EMPLOYER),
      at: later,
      expectedFreelancerAmount: '30.00',
      expectedCurrency: 'USD',
    });
    expect(settled.emitted.data).toMatchObject({
      freelancerAmount: '30.00',
      outcome: 'settled',
      escalatorId: EMPLOYER,
      arbitrationFee: '5.00',
      arbitrationFeeRefunded: true,
    });
    // Conceding in arbitration: the escalating employer gives the freelancer its claim and loses the fee.
    const conceded = step(arbitration, { type: 'ACCEPT_CLAIM', by: caller(EMPLOYER), at: later });
    expect(conceded.emitted.data).toMatchObject({ freelancerAmount: '80.00', outcome: 'claim_accepted', arbitrationFeeRefunded: false });
    expect(outcome(decideMilestone(arbitration, { type: 'WITHDRAW_DISPUTE', by: caller(FREELANCER), at: later }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'ILLEGAL_IN_STATUS',
    });
  });
});

describe('milestone machine: requested changes, and a review window on an accepted request', () => {
  const inMinutes = (m: number) => new Date(Date.parse(AT) + m * 60_000).toISOString();
  const step = (at: { state: string; context: MilestoneContext }, e: MilestoneEvent) => {
    const d = decideMilestone(at, e);
    if (d.kind !== 'accepted') throw new Error(`${e.type} not accepted: ${JSON.stringify(d)}`);
    return { ...d.next, emitted: d.emitted };
  };

  it('an accepted request carries the review window the employer chose; changes stop it, the next request starts a whole one', () => {
    const accepted = step(
      { state: 'requested', context: contextIn('requested') },
      { type: 'ACCEPT_REQUEST', by: caller(EMPLOYER), at: AT, reviewWindowMs: 3_600_000, ...RESERVED },
    );
    expect(accepted.context.terms.reviewWindowMs).toBe(3_600_000);
    const asked = step(accepted, { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: AT });
    expect(asked.context).toMatchObject({ dueKind: 'auto_release', dueAt: inMinutes(60) });
    const changes = step(asked, { type: 'REQUEST_CHANGES', by: caller(EMPLOYER), at: inMinutes(50), reason: 'fix the footer' });
    expect(changes).toMatchObject({ state: 'funded', context: { dueAt: '', dueKind: '', held: '10.00' } });
    expect(changes.emitted).toEqual({ type: 'changes_requested', data: { reason: 'fix the footer' } });
    expect(outcome(decideMilestone(changes, { type: 'DEADLINE', by: caller('system'), at: inMinutes(61) }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'ILLEGAL_IN_STATUS',
    });
    const again = step(changes, { type: 'REQUEST_RELEASE', by: caller(FREELANCER), at: inMinutes(100) });
    expect(again.context).toMatchObject({ dueKind: 'auto_release', dueAt: inMinutes(160) });
    // Once the window passed, what is held is the freelancer's: no more changes.
    expect(outcome(decideMilestone(again, { type: 'REQUEST_CHANGES', by: caller(EMPLOYER), at: inMinutes(160), reason: 'x' }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'REVIEW_WINDOW_PASSED',
    });
  });

  it('a corrected description keeps the previous one in its event', () => {
    const d = decideMilestone(
      { state: 'funded', context: { ...contextIn('funded'), description: 'one page' } },
      { type: 'UPDATE_DESCRIPTION', by: caller(EMPLOYER), at: AT, description: 'two pages' },
    );
    if (d.kind !== 'accepted') throw new Error('refused');
    expect(d.next).toMatchObject({ state: 'funded', context: { description: 'two pages', held: '10.00' } });
    expect(d.emitted).toEqual({ type: 'description_updated', data: { description: 'two pages', previous: 'one page' } });
  });

  it('an accept without a window keeps the request without one', () => {
    const accepted = step(
      { state: 'requested', context: contextIn('requested') },
      { type: 'ACCEPT_REQUEST', by: caller(EMPLOYER), at: AT, ...RESERVED },
    );
    expect(accepted.context.terms.reviewWindowMs).toBe(0);
  });
});

describe('milestone machine: a freeze by support staff', () => {
  const SUPPORT = caller(ROLES.support);
  const inMinutes = (m: number) => new Date(Date.parse(AT) + m * 60_000).toISOString();
  const step = (at: { state: string; context: MilestoneContext }, e: MilestoneEvent) => {
    const d = decideMilestone(at, e);
    if (d.kind !== 'accepted') throw new Error(`${e.type} not accepted: ${JSON.stringify(d)}`);
    return { ...d.next, emitted: d.emitted };
  };
  const releaseRequested = { state: 'releaseRequested', context: { ...contextIn('releaseRequested'), dueAt: inMinutes(60) } };

  it('stops the timer and every command; the unfreeze goes back with the time the timer had left', () => {
    const frozen = step(releaseRequested, { type: 'FREEZE', by: SUPPORT, at: inMinutes(20), reason: 'chargeback' });
    expect(frozen).toMatchObject({ state: 'frozen', context: { dueAt: '', dueKind: '', held: '10.00' } });
    expect(frozen.emitted).toEqual({ type: 'frozen', data: { reason: 'chargeback', previousStatus: 'RELEASE_REQUESTED' } });
    // The timer scan read the old due time: its DEADLINE is refused, as is the employer's release and the other party's.
    for (const e of [
      { type: 'DEADLINE', by: caller('system'), at: inMinutes(61) },
      { type: 'RELEASE', by: caller(EMPLOYER), at: inMinutes(30), amount: '', currency: '' },
      { type: 'CANCEL', by: caller(FREELANCER), at: inMinutes(30), reasonCode: '', reason: '', awardAccepted: true },
    ] as MilestoneEvent[])
      expect(outcome(decideMilestone(frozen, e))).toEqual({ code: 'FAILED_PRECONDITION', reason: 'MILESTONE_FROZEN' });
    const back = step(frozen, { type: 'UNFREEZE', by: SUPPORT, at: inMinutes(24 * 60), reason: 'cleared' });
    expect(back).toMatchObject({
      state: 'releaseRequested',
      context: { dueKind: 'auto_release', dueAt: inMinutes(24 * 60 + 40), frozen: null },
    });
    expect(back.emitted).toEqual({
      type: 'unfrozen',
      data: { reason: 'cleared', resumed: 'RELEASE_REQUESTED', dueAt: inMinutes(24 * 60 + 40) },
    });
    expect(outcome(decideMilestone(back, { type: 'DEADLINE', by: caller('system'), at: inMinutes(24 * 60 + 39) }))).toEqual({
      code: 'FAILED_PRECONDITION',
      reason: 'NOT_DUE',
    });
    expect(step(back, { type: 'DEADLINE', by: caller('system'), at: inMinutes(24 * 60 + 40) }).state).toBe('released');
  });

  it('a dispute frozen keeps its response deadline for after; a party with the support role is still a party', () => {
    const disputed = { state: 'disputed', context: { ...contextIn('disputed'), dueAt: inMinutes(60) } };
    const frozen = step(disputed, { type: 'FREEZE', by: SUPPORT, at: inMinutes(50), reason: 'review' });
    const back = step(frozen, { type: 'UNFREEZE', by: SUPPORT, at: inMinutes(500), reason: '' });
    expect(back).toMatchObject({ state: 'disputed', context: { dueKind: 'dispute_response', dueAt: inMinutes(510) } });
    expect(outcome(decideMilestone(disputed, { type: 'FREEZE', by: { id: EMPLOYER, roles: ['support'] }, at: AT, reason: 'x' }))).toEqual({
      code: 'PERMISSION_DENIED',
      reason: 'SUPPORT_IS_PARTY',
    });
  });
});

describe('milestone machine: clearing', () => {
  const DAY = 86_400_000;
  const terms = { ...DEFAULT_TERMS, freelancerFee: { percent: '10', minimum: '0' }, clearingMs: 7 * DAY };
  const at = { state: 'funded', context: { ...contextIn('funded'), terms } };
  const clears = new Date(Date.parse(AT) + 7 * DAY).toISOString();

  it('a payout to the freelancer names when it clears; without a clearing period, or with nothing paid, it does not', () => {
    const d = decideMilestone(at, { type: 'RELEASE', by: caller(EMPLOYER), at: AT, amount: '4.00', currency: 'USD' });
    if (d.kind !== 'accepted') throw new Error('refused');
    expect(d.emitted.data).toMatchObject({ amount: '4.00', fee: '0.40', clearsAt: clears });
    const plain = decideMilestone(
      { state: 'funded', context: contextIn('funded') },
      { type: 'RELEASE', by: caller(EMPLOYER), at: AT, amount: '', currency: '' },
    );
    if (plain.kind !== 'accepted') throw new Error('refused');
    expect(plain.emitted.data).not.toHaveProperty('clearsAt');
    const disputed = decideMilestone(at, {
      type: 'OPEN_DISPUTE',
      by: caller(EMPLOYER),
      at: AT,
      reason: 'x',
      currency: 'USD',
      claim: '10.00',
    });
    if (disputed.kind !== 'accepted') throw new Error('refused');
    // The employer's claim of everything granted: the freelancer gets nothing, nothing to clear.
    const conceded = decideMilestone(disputed.next, { type: 'ACCEPT_CLAIM', by: caller(FREELANCER), at: AT });
    if (conceded.kind !== 'accepted') throw new Error('refused');
    expect(conceded.emitted.data).toMatchObject({ freelancerAmount: '0.00' });
    expect(conceded.emitted.data).not.toHaveProperty('clearsAt');
  });
});

describe('milestone machine: funding decided by the account actor', () => {
  const create = (funding: { reservationId: string; reserved: string; fundingFailure: string }): MilestoneEvent => ({
    type: 'CREATE',
    by: caller(EMPLOYER),
    at: AT,
    milestoneId: 'm1',
    projectId: 'p1',
    freelancerId: FREELANCER,
    currency: 'USD',
    amount: '10.00',
    description: '',
    milestoneReason: '',
    terms: DEFAULT_TERMS,
    ...funding,
  });
  const voidIt = (by: string): MilestoneEvent => ({
    type: 'VOID_RESERVATION',
    by: caller(by),
    at: AT,
    reservationId: 'r1',
    reserved: '10.00',
    milestoneId: 'm1',
    projectId: 'p1',
    employerId: EMPLOYER,
    freelancerId: FREELANCER,
    currency: 'USD',
    amount: '10.00',
    terms: DEFAULT_TERMS,
  });

  it('a create the account refused is recorded as failed funding, holding nothing', () => {
    const d = decideMilestone(
      { state: 'new', context: initialMilestoneContext },
      create({ reservationId: '', reserved: '0', fundingFailure: 'INSUFFICIENT_FUNDS' }),
    );
    if (d.kind !== 'accepted') throw new Error('refused');
    expect(d.next.state).toBe('fundingFailed');
    expect(d.next.context).toMatchObject({ held: '0.00', fundingFailureReason: 'INSUFFICIENT_FUNDS', employerId: EMPLOYER });
    expect(d.emitted).toEqual({ type: 'funding_failed', data: { reason: 'INSUFFICIENT_FUNDS' } });
  });

  it('a create whose reservation does not cover amount plus fee is refused', () => {
    expect(
      outcome(
        decideMilestone(
          { state: 'new', context: initialMilestoneContext },
          create({ reservationId: 'r1', reserved: '9.99', fundingFailure: '' }),
        ),
      ),
    ).toEqual({ code: 'FAILED_PRECONDITION', reason: 'RESERVATION_MISMATCH' });
    expect(
      outcome(
        decideMilestone(
          { state: 'new', context: initialMilestoneContext },
          create({ reservationId: '', reserved: '10.00', fundingFailure: '' }),
        ),
      ),
    ).toEqual({ code: 'FAILED_PRECONDITION', reason: 'RESERVATION_MISMATCH' });
  });

  it('a void takes the place of a milestone that never appeared, and changes nothing anywhere else', () => {
    const d = decideMilestone({ state: 'new', context: initialMilestoneContext }, voidIt('system'));
    if (d.kind !== 'accepted') throw new Error('refused');
    expect(d.next.state).toBe('fundingFailed');
    expect(d.emitted).toEqual({
      type: 'reservation_voided',
      data: { reservationId: 'r1', amount: '10.00', reason: 'RESERVATION_EXPIRED' },
    });
    for (const state of STATES.filter((s) => s !== 'new')) {
      expect(outcome(decideMilestone({ state, context: contextIn(state) }, voidIt('system')))).toEqual({ unchanged: true });
    }
    expect(outcome(decideMilestone({ state: 'funded', context: contextIn('funded') }, voidIt(EMPLOYER)))).toEqual({
      code: 'PERMISSION_DENIED',
      reason: 'SYSTEM_ONLY',
    });
  });

  it('a create after a void is refused: the reservation can no longer be consumed', () => {
    const voided = decideMilestone({ state: 'new', context: initialMilestoneContext }, voidIt('system'));
    if (voided.kind !== 'accepted') throw new Error('refused');
    expect(outcome(decideMilestone(voided.next, create({ reservationId: 'r1', reserved: '10.00', fundingFailure: '' })))).toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
  });
});
