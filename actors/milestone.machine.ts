import { assertEvent, assign, not, setup } from 'xstate';
import { Decimal } from 'decimal.js';
import { add, cmp, format, isZero, sub, zero } from './money.js';
import type { CommandBase, DecisionSlots, Rejection } from './decision.js';
import type { MilestoneEmitted } from './events.js';
import { decide, type Decision, type Position } from './decide.js';
import { ARBITER_ROLE, SYSTEM_CALLER } from './decision.js';
import { DEFAULT_TERMS, feeOn, freelancerFeeFor, type Terms } from './terms.js';

/**
 * The milestone state machine: the single place that says which command is legal in which
 * state, and for whom. It is pure (guards and context updates only); the actor runtime
 * decides with xstate's `transition` and appends what the machine emitted.
 *
 * Money invariant kept by every transition: amount = held + released + returned once funded.
 * Fees are on top (the employer fee) or inside what was released (the freelancer fee); they
 * never change that sum.
 */

/** An open (or decided) dispute. The filer claims an amount; the other party is the respondent. */
export interface Dispute {
  filerId: string;
  respondentId: string;
  reason: string;
  /** What the filer claims: the freelancer a payment, the employer a refund; 0 < claim <= held. */
  claim: string;
  openedAt: string;
  /** The respondent proposed or accepted a settlement (or escalated successfully): no response deadline any more. */
  answered: boolean;
  /** The standing proposal: the amount for the freelancer, the rest back to the employer. */
  proposal: { byId: string; freelancerAmount: string } | null;
  /** Who escalated to arbitration, and the fee it paid; '' / '0' when nobody did. */
  escalatedBy: string;
  arbitrationFee: string;
  /** Why the last escalation failed (e.g. INSUFFICIENT_FUNDS). */
  escalationFailureReason: string;
  /** Proposals and escalation attempts made, by party id: both are capped, so a dispute has a bounded number of events. */
  proposalsBy: Record<string, number>;
  escalationsBy: Record<string, number>;
  /** How it ended: settled (accepted proposal), claim_granted (deadline), arbitrated; '' while open. */
  outcome: '' | 'settled' | 'claim_granted' | 'arbitrated';
  /** The decided amount for the freelancer, once it ended. */
  freelancerAmount: string;
}

/** Per party and dispute: proposals, and escalation attempts (a refused one costs nothing, so it is capped too). */
export const PROPOSALS_MAX = 10;
export const ESCALATIONS_MAX = 3;

/** Timers a milestone may be waiting on; `dueAt` says when. */
export type DueKind = '' | 'dispute_response' | 'auto_release';

export interface MilestoneContext extends DecisionSlots<MilestoneEmitted> {
  id: string;
  projectId: string;
  employerId: string;
  freelancerId: string;
  description: string;
  currency: string;
  amount: string;
  held: string;
  released: string;
  returned: string;
  createdAt: string;
  updatedAt: string;
  /** The reason given with the last cancellation request or cancellation: a code of CANCELLATION_REASONS ('' if none) and free text. */
  cancellationReasonCode: string;
  cancellationReason: string;
  /** Why the funding was refused (e.g. INSUFFICIENT_FUNDS, RESERVATION_EXPIRED). */
  fundingFailureReason: string;
  /** The account reservation this milestone's funding consumed (or, voided, took the place of); '' before, and for milestones funded by the ledger's hold. */
  reservationId: string;
  /** The state a cancellation request came from, to go back to if the freelancer rejects it. */
  stateBeforeCancellationRequest: string;
  /** The contract's terms, copied from the configuration at creation. */
  terms: Terms;
  /** The employer fee, charged on top of the amount when the milestone is funded. */
  employerFee: string;
  /** Freelancer fees charged so far, out of what was paid to the freelancer. */
  freelancerFee: string;
  /** ISO time a timer of kind `dueKind` fires at; '' when no timer runs. */
  dueAt: string;
  dueKind: DueKind;
  dispute: Dispute | null;
}

/**
 * How the employer's account actor decided the funding of a CREATE or ACCEPT_REQUEST, before
 * the command reaches the milestone: a reservation of `reserved` (the amount plus the employer
 * fee) under `reservationId`, or the reason it refused (`fundingFailure`, e.g. INSUFFICIENT_FUNDS).
 */
export interface Funding {
  reservationId: string;
  reserved: string;
  fundingFailure: string;
}

export type MilestoneEvent =
  | (CommandBase & {
      type: 'CREATE';
      milestoneId: string;
      projectId: string;
      freelancerId: string;
      currency: string;
      amount: string;
      description: string;
      terms: Terms;
    } & Funding)
  /**
   * The sweep of reservations found one (`reservationId`, of `reserved` = amount plus the employer
   * fee) whose milestone never appeared: in `new` it takes the milestone's place (final, no money
   * moved) so that no create can consume the reservation any more; anywhere else it changes nothing.
   */
  | (CommandBase & {
      type: 'VOID_RESERVATION';
      reservationId: string;
      reserved: string;
      milestoneId: string;
      projectId: string;
      employerId: string;
      freelancerId: string;
      currency: string;
      amount: string;
      terms: Terms;
    })
  /** A freelancer proposes a milestone; the project machine has checked the parties. */
  | (CommandBase & {
      type: 'REQUEST';
      milestoneId: string;
      projectId: string;
      employerId: string;
      currency: string;
      amount: string;
      description: string;
      terms: Terms;
    })
  | (CommandBase & { type: 'ACCEPT_REQUEST' } & Funding)
  | (CommandBase & { type: 'REJECT_REQUEST' })
  | (CommandBase & { type: 'WITHDRAW_REQUEST' })
  | (CommandBase & { type: 'REJECT_CANCELLATION' })
  | (CommandBase & { type: 'FUNDING_SUCCEEDED' })
  | (CommandBase & { type: 'FUNDING_FAILED'; reason: string })
  | (CommandBase & { type: 'REQUEST_RELEASE' })
  /** `amount` and `currency` empty mean "everything still held". */
  | (CommandBase & { type: 'RELEASE'; amount: string; currency: string })
  /** `reasonCode` is one of CANCELLATION_REASONS (the gateway checks it); `reason` is free text. */
  | (CommandBase & { type: 'REQUEST_CANCELLATION'; reasonCode: string; reason: string })
  /** `awardAccepted` is read from the project by the caller of the machine, at command time. */
  | (CommandBase & { type: 'CANCEL'; reasonCode: string; reason: string; awardAccepted: boolean })
  | (CommandBase & { type: 'OPEN_DISPUTE'; reason: string; currency: string; claim: string })
  | (CommandBase & { type: 'PROPOSE_SETTLEMENT'; currency: string; freelancerAmount: string })
  /** `expectedFreelancerAmount` (optional, '' = any) guards against accepting a proposal replaced a moment before. */
  | (CommandBase & { type: 'ACCEPT_SETTLEMENT'; expectedFreelancerAmount: string; expectedCurrency: string })
  /**
   * `available` is the caller's available balance in the milestone's currency, read by the
   * caller of the machine just before the command ('' when unknown): a party short of the fee
   * is refused without an event, so being short never uses up an attempt. The ledger's check
   * inside its transaction stays the one that counts.
   */
  | (CommandBase & { type: 'ESCALATE'; available: string })
  | (CommandBase & { type: 'ESCALATION_SUCCEEDED' })
  | (CommandBase & { type: 'ESCALATION_FAILED'; reason: string })
  | (CommandBase & { type: 'RESOLVE'; currency: string; freelancerAmount: string })
  /** A timer of the milestone came due; the machine checks `at` against `dueAt`. */
  | (CommandBase & { type: 'DEADLINE' });

export type MilestoneCommandType = MilestoneEvent['type'];

/** External status names, by state. */
export const MILESTONE_STATUS = {
  new: 'STATUS_UNSPECIFIED',
  requested: 'REQUESTED',
  requestRejected: 'REQUEST_REJECTED',
  requestWithdrawn: 'REQUEST_WITHDRAWN',
  pendingFunding: 'PENDING_FUNDING',
  fundingFailed: 'FUNDING_FAILED',
  funded: 'FUNDED',
  releaseRequested: 'RELEASE_REQUESTED',
  cancellationRequested: 'CANCELLATION_REQUESTED',
  released: 'RELEASED',
  cancelled: 'CANCELLED',
  disputed: 'DISPUTED',
  escalating: 'DISPUTED',
  arbitration: 'DISPUTED',
  resolved: 'RESOLVED',
} as const;

/** The stage of a dispute, by state, for clients that need more than DISPUTED. */
export const DISPUTE_STAGE: Partial<Record<MilestoneStateName, string>> = {
  disputed: 'NEGOTIATION',
  escalating: 'ESCALATING',
  arbitration: 'ARBITRATION',
  resolved: 'RESOLVED',
};
export type MilestoneStateName = keyof typeof MILESTONE_STATUS;
export type MilestoneStatus = (typeof MILESTONE_STATUS)[MilestoneStateName];

/** Whether a persisted state name (a plain string in the log) is one of this machine's. */
export function isMilestoneState(state: string): state is MilestoneStateName {
  return Object.hasOwn(MILESTONE_STATUS, state);
}

/** The external status of a persisted state name; STATUS_UNSPECIFIED for a name this machine does not have. */
export function statusOf(state: string): MilestoneStatus {
  return isMilestoneState(state) ? MILESTONE_STATUS[state] : 'STATUS_UNSPECIFIED';
}

/** The dispute stage of a persisted state name; undefined outside a dispute. */
export function disputeStageOf(state: string): string | undefined {
  return isMilestoneState(state) ? DISPUTE_STAGE[state] : undefined;
}

const isEmployer = (c: MilestoneContext, e: MilestoneEvent) => e.by.id === c.employerId;
const isFreelancer = (c: MilestoneContext, e: MilestoneEvent) => e.by.id === c.freelancerId;
const isSystem = (_c: MilestoneContext, e: MilestoneEvent) => e.by.id === SYSTEM_CALLER;
const isParty = (c: MilestoneContext, e: MilestoneEvent) => isEmployer(c, e) || isFreelancer(c, e);
const systemOnly = (c: MilestoneContext, e: MilestoneEvent) => (isSystem(c, e) ? null : 'SYSTEM_ONLY');
const partiesOnly = (c: MilestoneContext, e: MilestoneEvent) => (isParty(c, e) ? null : 'NOT_PARTY');

/**
 * Who may issue each command. Returns null when the caller may, else the stable reason of
 * the PERMISSION_DENIED refusal. This table is the whole of the milestone's access rules.
 */
const partyRefusal: { [T in MilestoneCommandType]: (c: MilestoneContext, e: Extract<MilestoneEvent, { type: T }>) => string | null } = {
  // Whoever creates a milestone becomes its employer; project membership is checked by the project machine.
  CREATE: () => null,
  // Whoever requests becomes its freelancer; project membership is checked by the project machine.
  REQUEST: () => null,
  ACCEPT_REQUEST: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  REJECT_REQUEST: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  WITHDRAW_REQUEST: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  REJECT_CANCELLATION: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  FUNDING_SUCCEEDED: systemOnly,
  FUNDING_FAILED: systemOnly,
  VOID_RESERVATION: systemOnly,
  REQUEST_RELEASE: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  RELEASE: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  REQUEST_CANCELLATION: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  // Once the freelancer accepted the award only the freelancer may cancel (return the money).
  CANCEL: (c, e) => {
    if (isFreelancer(c, e)) return null;
    if (isEmployer(c, e)) return e.awardAccepted ? 'AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL' : null;
    return 'NOT_PARTY';
  },
  OPEN_DISPUTE: partiesOnly,
  PROPOSE_SETTLEMENT: partiesOnly,
  ACCEPT_SETTLEMENT: partiesOnly,
  ESCALATE: partiesOnly,
  ESCALATION_SUCCEEDED: systemOnly,
  ESCALATION_FAILED: systemOnly,
  // An arbiter decides disputes it is not a party to.
  RESOLVE: (c, e) => (!e.by.roles.includes(ARBITER_ROLE) ? 'NOT_ARBITER' : isParty(c, e) ? 'ARBITER_IS_PARTY' : null),
  DEADLINE: systemOnly,
};

function refusalFor(c: MilestoneContext, e: MilestoneEvent): string | null {
  const rule = partyRefusal[e.type] as (c: MilestoneContext, e: MilestoneEvent) => string | null;
  return rule(c, e);
}

/**
 * Who may issue a command, checked before the machine runs (the permission table above):
 * PERMISSION_DENIED with the table's reason. A milestone that does not exist yet has no
 * parties: there only voiding a reservation is the system's alone, and any other command is
 * the machine's to answer (CREATE, REQUEST, or NOT_FOUND).
 */
export function milestonePermission(at: Position<MilestoneContext>, e: MilestoneEvent): Rejection | null {
  if (at.state === 'new' && e.type !== 'VOID_RESERVATION') return null;
  const reason = refusalFor(at.context, e);
  return reason === null ? null : reject('PERMISSION_DENIED', reason, `caller may not ${e.type} this milestone`);
}

/** The amount a RELEASE moves: the requested one, or everything held. */
export function releaseAmount(c: MilestoneContext, e: Extract<MilestoneEvent, { type: 'RELEASE' }>): string {
  return e.amount === '' ? c.held : e.amount;
}

const later = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();
const reached = (at: string, due: string) => due !== '' && Date.parse(at) >= Date.parse(due);

/** What a payout of `amount` to the freelancer costs in freelancer fees (see terms.ts). */
function payoutFee(c: MilestoneContext, amount: string): string {
  return freelancerFeeFor(c.terms, c.currency, c.released, c.freelancerFee, amount);
}

/** The dispute of a milestone in a dispute state: its absence there is a broken invariant. */
function disputeOf(c: MilestoneContext): Dispute {
  if (!c.dispute) throw new Error(`milestone ${c.id} is in a dispute state without a dispute`);
  return c.dispute;
}

/**
 * Ends a dispute with `freelancerAmount` for the freelancer and the rest of what is held back
 * to the employer, in one step. An escalation fee goes back to the escalating party if it won
 * (got more than half of the claim, as filer; or kept the filer to at most half, as respondent),
 * else to the platform.
 */

function settlement(
  c: MilestoneContext,
  freelancerAmount: string,
  outcome: Exclude<Dispute['outcome'], ''>,
  at: string,
): Partial<MilestoneContext> {
  const d = disputeOf(c);
  const employerAmount = sub(c.currency, c.held, freelancerAmount);
  const fee = payoutFee(c, freelancerAmount);
  const filerShare = d.filerId === c.freelancerId ? freelancerAmount : employerAmount;
  const filerWon = new Decimal(filerShare).gt(new Decimal(d.claim).dividedBy(2));
  const winnerId = filerWon ? d.filerId : d.respondentId;
  const escalated = d.escalatedBy !== '' && !isZero(d.arbitrationFee);
  return {
    held: zero(c.currency),
    released: add(c.currency, c.released, freelancerAmount),
    returned: add(c.currency, c.returned, employerAmount),
    freelancerFee: add(c.currency, c.freelancerFee, fee),
    dueAt: '',
    dueKind: '',
    dispute: { ...d, outcome, freelancerAmount },
    updatedAt: at,
    emitted: {
      type: 'resolved',
      data: {
        amount: c.held,
        freelancerAmount,
        employerAmount,
        fee,
        outcome,
        arbitrationFee: escalated ? d.arbitrationFee : zero(c.currency),
        escalatorId: escalated ? d.escalatedBy : '',
        arbitrationFeeRefunded: escalated && winnerId === d.escalatedBy,
      },
    },
  };
}

function reject(code: Rejection['code'], reason: string, message: string): Rejection {
  return { code, reason, message };
}

/**
 * How a milestone's events carry its context (the runtime's EventContextRules): the fields set
 * once or seldom (at creation, a reservation at funding, a cancellation's or a dispute's texts)
 * only in the event that changes them, and `updatedAt` only when it is not the event's time.
 * The parties, the currency and the amounts the read model projects are in every event, for
 * the ledger's postings and for consumers.
 */
export const MILESTONE_EVENT_CONTEXT = {
  carriedWhenChanged: [
    'id',
    'projectId',
    'description',
    'amount',
    'createdAt',
    'terms',
    'employerFee',
    'reservationId',
    'cancellationReasonCode',
    'cancellationReason',
    'fundingFailureReason',
    'stateBeforeCancellationRequest',
    'dispute',
  ] as const satisfies readonly (keyof MilestoneContext)[],
  firstEventAlways: ['terms'] as const satisfies readonly (keyof MilestoneContext)[],
  timeField: 'updatedAt' as const satisfies keyof MilestoneContext,
};

export const initialMilestoneContext: MilestoneContext = {
  id: '',
  projectId: '',
  employerId: '',
  freelancerId: '',
  description: '',
  currency: '',
  amount: '0',
  held: '0',
  released: '0',
  returned: '0',
  createdAt: '',
  updatedAt: '',
  cancellationReasonCode: '',
  cancellationReason: '',
  fundingFailureReason: '',
  reservationId: '',
  stateBeforeCancellationRequest: '',
  terms: DEFAULT_TERMS,
  employerFee: '0',
  freelancerFee: '0',
  dueAt: '',
  dueKind: '',
  dispute: null,
  rejection: null,
  emitted: null,
};

/** The context of a milestone that comes into being, by a create or a request: nothing held yet. */
function opened(
  e: { milestoneId: string; projectId: string; description: string; currency: string; amount: string; at: string; terms: Terms },
  parties: { employerId: string; freelancerId: string },
  emittedType: 'created' | 'requested',
): Partial<MilestoneContext> & { employerFee: string } {
  const z = zero(e.currency);
  const employerFee = feeOn(e.terms.employerFee, e.currency, e.amount);
  return {
    terms: e.terms,
    employerFee,
    freelancerFee: z,
    id: e.milestoneId,
    projectId: e.projectId,
    ...parties,
    description: e.description,
    currency: e.currency,
    amount: e.amount,
    held: z,
    released: z,
    returned: z,
    createdAt: e.at,
    updatedAt: e.at,
    // A create asks the ledger for the hold (amount plus the employer fee); a request does not yet.
    emitted:
      emittedType === 'created'
        ? { type: 'created', data: { amount: e.amount, employerFee } }
        : { type: 'requested', data: { amount: e.amount } },
  };
}

/** A refusal of the machine's state rules: its gRPC code, its stable reason, and what it tells the caller. */
interface Refusal {
  code: Rejection['code'];
  reason: string;
  message: (at: { context: MilestoneContext; event: MilestoneEvent }) => string;
}

/**
 * Every refusal the state rules make, by name: a transition refuses with `refuse(name)`. The
 * party rule's refusals are the permission table's (milestonePermission), asked before these.
 */
const REFUSALS = {
  inState: {
    code: 'FAILED_PRECONDITION',
    reason: 'ILLEGAL_IN_STATUS',
    message: ({ event }) => `${event.type} is not allowed in the milestone's current status`,
  },
  notFound: { code: 'NOT_FOUND', reason: 'MILESTONE_NOT_FOUND', message: () => 'no such milestone' },
  currencyMismatch: {
    code: 'INVALID_ARGUMENT',
    reason: 'CURRENCY_MISMATCH',
    message: ({ context }) => `the milestone is in ${context.currency}`,
  },
  claimAboveHeld: {
    code: 'FAILED_PRECONDITION',
    reason: 'CLAIM_EXCEEDS_HELD',
    message: ({ context }) => `the claim exceeds the ${context.held} ${context.currency} held`,
  },
  splitAboveHeld: {
    code: 'FAILED_PRECONDITION',
    reason: 'AMOUNT_EXCEEDS_HELD',
    message: ({ context }) => `the freelancer amount exceeds the ${context.held} ${context.currency} held`,
  },
  noProposal: { code: 'FAILED_PRECONDITION', reason: 'NO_PROPOSAL', message: () => 'no settlement has been proposed' },
  ownProposal: {
    code: 'FAILED_PRECONDITION',
    reason: 'OWN_PROPOSAL',
    message: () => 'the other party must accept a proposal, not its proposer',
  },
  proposalChanged: {
    code: 'FAILED_PRECONDITION',
    reason: 'PROPOSAL_CHANGED',
    message: ({ context }) => `the standing proposal is ${context.dispute?.proposal?.freelancerAmount} for the freelancer`,
  },
  negotiationOpen: {
    code: 'FAILED_PRECONDITION',
    reason: 'NEGOTIATION_WINDOW_OPEN',
    message: ({ context }) => `escalation is possible from ${later(disputeOf(context).openedAt, context.terms.negotiationMs)}`,
  },
  feeNotCovered: {
    code: 'FAILED_PRECONDITION',
    reason: 'INSUFFICIENT_FUNDS',
    message: ({ context }) =>
      `the arbitration fee of ${context.terms.arbitrationFee} ${context.currency} exceeds the caller's available balance`,
  },
  proposalLimit: {
    code: 'FAILED_PRECONDITION',
    reason: 'PROPOSAL_LIMIT',
    message: () => `at most ${PROPOSALS_MAX} proposals per party and dispute`,
  },
  escalationLimit: {
    code: 'FAILED_PRECONDITION',
    reason: 'ESCALATION_LIMIT',
    message: () => `at most ${ESCALATIONS_MAX} escalation attempts per party and dispute`,
  },
  responseDeadlinePassed: {
    code: 'FAILED_PRECONDITION',
    reason: 'RESPONSE_DEADLINE_PASSED',
    message: ({ context }) => `the respondent did not answer by ${context.dueAt}: the claim is being granted`,
  },
  reviewWindowPassed: {
    code: 'FAILED_PRECONDITION',
    reason: 'REVIEW_WINDOW_PASSED',
    message: ({ context }) => `the review window ended at ${context.dueAt}: what is held is being released`,
  },
  notDue: { code: 'FAILED_PRECONDITION', reason: 'NOT_DUE', message: () => 'no timer of this milestone is due' },
  releaseAboveHeld: {
    code: 'FAILED_PRECONDITION',
    reason: 'AMOUNT_EXCEEDS_HELD',
    message: ({ context }) => `release amount exceeds the ${context.held} ${context.currency} still held`,
  },
  reservationMismatch: {
    code: 'FAILED_PRECONDITION',
    reason: 'RESERVATION_MISMATCH',
    message: () => 'the reservation does not cover the amount and the employer fee',
  },
} satisfies Record<string, Refusal>;

type RefusalName = keyof typeof REFUSALS;

/** The machine's one refusal action, with the refusal's name as its parameter. */
const refuse = (name: RefusalName) => ({ type: 'refuse', params: { name } }) as const;

const releaseTransitions = [
  { guard: not('releaseInMilestoneCurrency'), actions: refuse('currencyMismatch') },
  { guard: not('releaseWithinHeld'), actions: refuse('releaseAboveHeld') },
  { guard: 'releaseEmptiesHeld' as const, target: 'released' as const, actions: 'release' as const },
  // A partial release keeps the milestone in its current state with the rest still held.
  { actions: 'release' as const },
];

const cancelTransition = [
  // Once the review window passed, what is held is the freelancer's: the timer releases it.
  { guard: 'autoReleaseDue' as const, actions: refuse('reviewWindowPassed') },
  { target: 'cancelled' as const, actions: 'cancel' as const },
];

/** Opening a dispute freezes what is held, from any state that holds money. */
const openDisputeFrom = (from: 'funded' | 'releaseRequested' | 'cancellationRequested') => [
  { guard: 'autoReleaseDue' as const, actions: refuse('reviewWindowPassed') },
  { guard: not('inMilestoneCurrency'), actions: refuse('currencyMismatch') },
  { guard: not('claimWithinHeld'), actions: refuse('claimAboveHeld') },
  { target: 'disputed' as const, actions: { type: 'openDispute' as const, params: { from } } },
];

/** The review window passed without a release or a dispute: everything held goes to the freelancer. */
const autoReleaseTransition = [
  { guard: 'autoReleaseDue' as const, target: 'released' as const, actions: 'autoRelease' as const },
  { actions: refuse('notDue') },
];

export const milestoneMachine = setup({
  types: {
    context: {} as MilestoneContext,
    events: {} as MilestoneEvent,
    tags: {} as MilestoneTag,
  },
  guards: {
    fundingRefused: ({ event }) => (event.type === 'CREATE' || event.type === 'ACCEPT_REQUEST') && event.fundingFailure !== '',
    // The reservation must be exactly what funding takes (amount plus the employer fee), so the ledger never meets a mismatch.
    reservationCovers: ({ context, event }) => {
      if (event.type === 'CREATE')
        return (
          event.reservationId !== '' &&
          cmp(event.reserved, add(event.currency, event.amount, feeOn(event.terms.employerFee, event.currency, event.amount))) === 0
        );
      if (event.type === 'ACCEPT_REQUEST')
        return event.reservationId !== '' && cmp(event.reserved, add(context.currency, context.amount, context.employerFee)) === 0;
      return false;
    },
    releaseInMilestoneCurrency: ({ context, event }) =>
      event.type === 'RELEASE' && (event.amount === '' || event.currency === context.currency),
    inMilestoneCurrency: ({ context, event }) => 'currency' in event && event.currency === context.currency,
    claimWithinHeld: ({ context, event }) => event.type === 'OPEN_DISPUTE' && cmp(event.claim, context.held) <= 0,
    splitWithinHeld: ({ context, event }) =>
      (event.type === 'PROPOSE_SETTLEMENT' || event.type === 'RESOLVE') && cmp(event.freelancerAmount, context.held) <= 0,
    hasProposal: ({ context }) => context.dispute?.proposal != null,
    ownProposal: ({ context, event }) => context.dispute?.proposal?.byId === event.by.id,
    expectedInMilestoneCurrency: ({ context, event }) =>
      event.type === 'ACCEPT_SETTLEMENT' && (event.expectedFreelancerAmount === '' || event.expectedCurrency === context.currency),
    proposalAsExpected: ({ context, event }) =>
      event.type === 'ACCEPT_SETTLEMENT' &&
      (event.expectedFreelancerAmount === '' ||
        cmp(event.expectedFreelancerAmount, context.dispute?.proposal?.freelancerAmount ?? '0') === 0),
    proposalsLeft: ({ context, event }) => (context.dispute?.proposalsBy[event.by.id] ?? 0) < PROPOSALS_MAX,
    escalationsLeft: ({ context, event }) => (context.dispute?.escalationsBy[event.by.id] ?? 0) < ESCALATIONS_MAX,
    negotiationOver: ({ context, event }) =>
      !!context.dispute && reached(event.at, later(context.dispute.openedAt, context.terms.negotiationMs)),
    arbitrationFree: ({ context }) => isZero(context.terms.arbitrationFee),
    feeCovered: ({ context, event }) =>
      event.type === 'ESCALATE' && (event.available === '' || cmp(event.available, context.terms.arbitrationFee) >= 0),
    autoReleaseDue: ({ context, event }) => context.dueKind === 'auto_release' && reached(event.at, context.dueAt),
    responseDue: ({ context, event }) => context.dueKind === 'dispute_response' && reached(event.at, context.dueAt),
    releaseWithinHeld: ({ context, event }) => event.type === 'RELEASE' && cmp(releaseAmount(context, event), context.held) <= 0,
    releaseEmptiesHeld: ({ context, event }) => event.type === 'RELEASE' && cmp(releaseAmount(context, event), context.held) === 0,
    cameFromReleaseRequested: ({ context }) => context.stateBeforeCancellationRequest === 'releaseRequested',
  },
  actions: {
    refuse: assign({
      rejection: ({ context, event }, params: { name: RefusalName }) => {
        const r: Refusal = REFUSALS[params.name];
        return reject(r.code, r.reason, r.message({ context, event }));
      },
    }),
    create: assign(({ event }) => {
      assertEvent(event, 'CREATE');
      const c = opened(event, { employerId: event.by.id, freelancerId: event.freelancerId }, 'created');
      // The employer's account actor reserved the amount and the fee: the milestone is funded on its first event.
      return {
        ...c,
        held: event.amount,
        reservationId: event.reservationId,
        emitted: { type: 'created', data: { amount: event.amount, employerFee: c.employerFee, reservationId: event.reservationId } },
      };
    }),
    createUnfunded: assign(({ event }) => {
      assertEvent(event, 'CREATE');
      const c = opened(event, { employerId: event.by.id, freelancerId: event.freelancerId }, 'created');
      return {
        ...c,
        fundingFailureReason: event.fundingFailure,
        emitted: { type: 'funding_failed', data: { reason: event.fundingFailure } },
      };
    }),
    voidReservation: assign(({ event }) => {
      assertEvent(event, 'VOID_RESERVATION');
      const c = opened({ ...event, description: '' }, { employerId: event.employerId, freelancerId: event.freelancerId }, 'created');
      const reason = 'RESERVATION_EXPIRED';
      return {
        ...c,
        fundingFailureReason: reason,
        reservationId: event.reservationId,
        emitted: { type: 'reservation_voided', data: { reservationId: event.reservationId, amount: event.reserved, reason } },
      };
    }),
    request: assign(({ event }) => {
      assertEvent(event, 'REQUEST');
      return opened(event, { employerId: event.employerId, freelancerId: event.by.id }, 'requested');
    }),
    acceptRequest: assign(({ context, event }) => {
      assertEvent(event, 'ACCEPT_REQUEST');
      // Funded like a create: from the employer's reservation of the amount plus the employer fee.
      return {
        held: context.amount,
        reservationId: event.reservationId,
        updatedAt: event.at,
        emitted: {
          type: 'request_accepted',
          data: { amount: context.amount, employerFee: context.employerFee, reservationId: event.reservationId },
        },
      };
    }),
    acceptRequestUnfunded: assign(({ event }) => {
      assertEvent(event, 'ACCEPT_REQUEST');
      const reason = event.fundingFailure;
      return { fundingFailureReason: reason, updatedAt: event.at, emitted: { type: 'funding_failed', data: { reason } } };
    }),
    rejectRequest: assign(({ event }) => ({ updatedAt: event.at, emitted: { type: 'request_rejected', data: {} } })),
    withdrawRequest: assign(({ event }) => ({ updatedAt: event.at, emitted: { type: 'request_withdrawn', data: {} } })),
    rejectCancellation: assign(({ context, event }) => ({
      updatedAt: event.at,
      stateBeforeCancellationRequest: '',
      emitted: {
        type: 'cancellation_rejected',
        data: { resumed: statusOf(context.stateBeforeCancellationRequest || 'funded') },
      },
    })),
    markFunded: assign(({ context, event }) => ({
      held: context.amount,
      updatedAt: event.at,
      emitted: { type: 'funded', data: { amount: context.amount, employerFee: context.employerFee } },
    })),
    markFundingFailed: assign(({ event }) => {
      assertEvent(event, 'FUNDING_FAILED');
      const reason = event.reason;
      return { fundingFailureReason: reason, updatedAt: event.at, emitted: { type: 'funding_failed', data: { reason } } };
    }),
    markReleaseRequested: assign(({ context, event }): Partial<MilestoneContext> => {
      // With a review window, the request starts the auto-release timer.
      const window = context.terms.reviewWindowMs;
      if (window === 0) return { updatedAt: event.at, emitted: { type: 'release_requested', data: {} } };
      const dueAt = later(event.at, window);
      return {
        dueAt,
        dueKind: 'auto_release' as const,
        updatedAt: event.at,
        emitted: { type: 'release_requested', data: { autoReleaseAt: dueAt } },
      };
    }),
    release: assign(({ context, event }) => {
      assertEvent(event, 'RELEASE');
      const amount = releaseAmount(context, event);
      const held = sub(context.currency, context.held, amount);
      const fee = payoutFee(context, amount);
      return {
        held,
        released: add(context.currency, context.released, amount),
        freelancerFee: add(context.currency, context.freelancerFee, fee),
        // A partial release leaves a running review window as it is; the rest follows when it passes.
        ...(isZero(held) ? { dueAt: '', dueKind: '' as const } : {}),
        updatedAt: event.at,
        emitted: { type: isZero(held) ? 'released' : 'partially_released', data: { amount, held, fee } },
      };
    }),
    autoRelease: assign(({ context, event }) => {
      const fee = payoutFee(context, context.held);
      return {
        held: zero(context.currency),
        released: add(context.currency, context.released, context.held),
        freelancerFee: add(context.currency, context.freelancerFee, fee),
        dueAt: '',
        dueKind: '' as const,
        updatedAt: event.at,
        emitted: { type: 'released', data: { amount: context.held, held: zero(context.currency), fee, automatic: true } },
      };
    }),
    openDispute: assign(({ context, event }, params: { from: MilestoneStateName }) => {
      assertEvent(event, 'OPEN_DISPUTE');
      const filerIsFreelancer = event.by.id === context.freelancerId;
      const respondentId = filerIsFreelancer ? context.employerId : context.freelancerId;
      const window = filerIsFreelancer ? context.terms.responseMsEmployer : context.terms.responseMsFreelancer;
      const dueAt = later(event.at, window);
      return {
        // Any auto-release timer stops: the dispute's response deadline replaces it.
        dueAt,
        dueKind: 'dispute_response' as const,
        stateBeforeCancellationRequest: params.from === 'cancellationRequested' ? context.stateBeforeCancellationRequest : '',
        dispute: {
          filerId: event.by.id,
          respondentId,
          reason: event.reason,
          claim: event.claim,
          openedAt: event.at,
          answered: false,
          proposal: null,
          escalatedBy: '',
          arbitrationFee: zero(context.currency),
          escalationFailureReason: '',
          proposalsBy: {},
          escalationsBy: {},
          outcome: '' as const,
          freelancerAmount: '',
        },
        updatedAt: event.at,
        emitted: { type: 'dispute_opened', data: { reason: event.reason, claimedAmount: event.claim, respondentId, respondBy: dueAt } },
      };
    }),
    proposeSettlement: assign(({ context, event }) => {
      assertEvent(event, 'PROPOSE_SETTLEMENT');
      const d = disputeOf(context);
      const answers = event.by.id === d.respondentId;
      return {
        ...(answers ? { dueAt: '', dueKind: '' as const } : {}),
        dispute: {
          ...d,
          answered: d.answered || answers,
          proposal: { byId: event.by.id, freelancerAmount: event.freelancerAmount },
          proposalsBy: { ...d.proposalsBy, [event.by.id]: (d.proposalsBy[event.by.id] ?? 0) + 1 },
        },
        updatedAt: event.at,
        emitted: {
          type: 'settlement_proposed',
          data: { freelancerAmount: event.freelancerAmount, employerAmount: sub(context.currency, context.held, event.freelancerAmount) },
        },
      };
    }),
    acceptSettlement: assign(({ context, event }) => {
      const proposal = disputeOf(context).proposal;
      if (!proposal) throw new Error(`milestone ${context.id}: a settlement accepted with no proposal (the hasProposal guard)`);
      return settlement(context, proposal.freelancerAmount, 'settled', event.at);
    }),
    resolve: assign(({ context, event }) => {
      assertEvent(event, 'RESOLVE');
      return settlement(context, event.freelancerAmount, 'arbitrated', event.at);
    }),
    grantClaim: assign(({ context, event }) => {
      // Unanswered: the filer gets its claim; the rest of what is held goes to the other party.
      const d = disputeOf(context);
      const freelancerAmount = d.filerId === context.freelancerId ? d.claim : sub(context.currency, context.held, d.claim);
      return settlement(context, freelancerAmount, 'claim_granted', event.at);
    }),
    requestEscalation: assign(({ context, event }) => ({
      dispute: {
        ...disputeOf(context),
        escalatedBy: event.by.id,
        arbitrationFee: format(context.currency, context.terms.arbitrationFee),
        escalationsBy: { ...disputeOf(context).escalationsBy, [event.by.id]: (disputeOf(context).escalationsBy[event.by.id] ?? 0) + 1 },
      },
      updatedAt: event.at,
      // The escalating party's account actor reserves the fee, or refuses: ESCALATION_SUCCEEDED or _FAILED follows.
      emitted: {
        type: 'escalation_requested',
        data: { amount: format(context.currency, context.terms.arbitrationFee), escalatorId: event.by.id, funding: 'account' },
      },
    })),
    escalate: assign(({ context, event }) => {
      const d = disputeOf(context);
      const by = d.escalatedBy || event.by.id;
      return {
        // In arbitration nothing is due: the arbiter decides.
        dueAt: '',
        dueKind: '' as const,
        dispute: { ...d, escalatedBy: by, answered: true, escalationFailureReason: '' },
        updatedAt: event.at,
        emitted: { type: 'escalated', data: { escalatorId: by, arbitrationFee: d.arbitrationFee } },
      };
    }),
    markEscalationFailed: assign(({ context, event }) => {
      assertEvent(event, 'ESCALATION_FAILED');
      const reason = event.reason;
      return {
        dispute: { ...disputeOf(context), escalatedBy: '', arbitrationFee: zero(context.currency), escalationFailureReason: reason },
        updatedAt: event.at,
        emitted: { type: 'escalation_failed', data: { reason } },
      };
    }),
    markCancellationRequested: assign(({ event }, params: { from: MilestoneStateName }) => {
      assertEvent(event, 'REQUEST_CANCELLATION');
      const { reasonCode, reason } = event;
      return {
        cancellationReasonCode: reasonCode,
        cancellationReason: reason,
        stateBeforeCancellationRequest: params.from,
        updatedAt: event.at,
        emitted: { type: 'cancellation_requested', data: { reasonCode, reason } },
      };
    }),
    cancel: assign(({ context, event }) => {
      // A cancel that gives no reason of its own keeps the one of the cancellation request it answers.
      const reasonCode = (event.type === 'CANCEL' && event.reasonCode) || context.cancellationReasonCode;
      const reason = (event.type === 'CANCEL' && event.reason) || context.cancellationReason;
      return {
        held: zero(context.currency),
        returned: add(context.currency, context.returned, context.held),
        cancellationReasonCode: reasonCode,
        cancellationReason: reason,
        dueAt: '',
        dueKind: '' as const,
        updatedAt: event.at,
        emitted: { type: 'cancelled', data: { amount: context.held, reasonCode, reason } },
      };
    }),
  },
}).createMachine({
  id: 'milestone',
  initial: 'new',
  context: initialMilestoneContext,
  // Who may issue a command is decided before the machine runs (milestonePermission, through
  // decideMilestone): wrong party always wins over wrong state. The fallback, taken when the
  // current state has no transition for a command, is "not in this status".
  on: {
    // A reservation is voided only in place of a milestone that never appeared; elsewhere the sweep learns nothing changed.
    VOID_RESERVATION: {},
    '*': { actions: refuse('inState') },
  },
  states: {
    new: {
      description: 'No milestone yet: only CREATE and REQUEST are meaningful; anything else is NOT_FOUND.',
      on: {
        CREATE: [
          { guard: 'fundingRefused', target: 'fundingFailed', actions: 'createUnfunded' },
          { guard: not('reservationCovers'), actions: refuse('reservationMismatch') },
          { target: 'funded', actions: 'create' },
        ],
        REQUEST: { target: 'requested', actions: 'request' },
        VOID_RESERVATION: { target: 'fundingFailed', actions: 'voidReservation' },
        '*': { actions: refuse('notFound') },
      },
    },
    requested: {
      tags: ['unfunded'],
      description: 'The freelancer proposed it; no money moves until the employer accepts.',
      on: {
        ACCEPT_REQUEST: [
          { guard: 'fundingRefused', target: 'fundingFailed', actions: 'acceptRequestUnfunded' },
          { guard: not('reservationCovers'), actions: refuse('reservationMismatch') },
          { target: 'funded', actions: 'acceptRequest' },
        ],
        REJECT_REQUEST: { target: 'requestRejected', actions: 'rejectRequest' },
        WITHDRAW_REQUEST: { target: 'requestWithdrawn', actions: 'withdrawRequest' },
      },
    },
    requestRejected: { type: 'final', tags: ['unfunded'], description: 'Final: the employer declined the request; no money moved.' },
    requestWithdrawn: { type: 'final', tags: ['unfunded'], description: 'Final: the freelancer withdrew the request; no money moved.' },
    pendingFunding: {
      tags: ['unfunded', 'holdPending'],
      description:
        'Created by an earlier version, which let the ledger worker hold (or refuse) the employer funds; new milestones are funded on creation.',
      on: {
        FUNDING_SUCCEEDED: { target: 'funded', actions: 'markFunded' },
        FUNDING_FAILED: { target: 'fundingFailed', actions: 'markFundingFailed' },
      },
    },
    fundingFailed: { type: 'final', tags: ['unfunded'], description: 'Final: the hold was refused; no money moved.' },
    funded: {
      tags: ['holdsMoney'],
      description: 'The amount is held in escrow; work may proceed.',
      on: {
        REQUEST_RELEASE: { target: 'releaseRequested', actions: 'markReleaseRequested' },
        RELEASE: releaseTransitions,
        REQUEST_CANCELLATION: {
          target: 'cancellationRequested',
          actions: { type: 'markCancellationRequested', params: { from: 'funded' } },
        },
        CANCEL: cancelTransition,
        OPEN_DISPUTE: openDisputeFrom('funded'),
      },
    },
    releaseRequested: {
      tags: ['holdsMoney', 'timer'],
      description: 'The freelancer asked the employer to release; money still held.',
      on: {
        RELEASE: releaseTransitions,
        REQUEST_CANCELLATION: [
          { guard: 'autoReleaseDue', actions: refuse('reviewWindowPassed') },
          { target: 'cancellationRequested', actions: { type: 'markCancellationRequested', params: { from: 'releaseRequested' } } },
        ],
        CANCEL: cancelTransition,
        OPEN_DISPUTE: openDisputeFrom('releaseRequested'),
        DEADLINE: autoReleaseTransition,
      },
    },
    cancellationRequested: {
      tags: ['holdsMoney', 'timer'],
      description: 'The employer asked the freelancer to cancel; money still held.',
      on: {
        RELEASE: releaseTransitions,
        CANCEL: cancelTransition,
        // The freelancer keeps the contract: back to where the request came from.
        REJECT_CANCELLATION: [
          { guard: 'cameFromReleaseRequested', target: 'releaseRequested', actions: 'rejectCancellation' },
          { target: 'funded', actions: 'rejectCancellation' },
        ],
        OPEN_DISPUTE: openDisputeFrom('cancellationRequested'),
        // A cancellation request does not stop a running review window (only a release or a dispute does).
        DEADLINE: autoReleaseTransition,
      },
    },
    disputed: {
      tags: ['holdsMoney', 'dispute', 'timer'],
      description: 'Frozen: no release or cancel. The parties negotiate; the respondent must answer before dueAt.',
      on: {
        // Past an unanswered deadline nothing but the timer's grant is accepted.
        PROPOSE_SETTLEMENT: [
          { guard: 'responseDue', actions: refuse('responseDeadlinePassed') },
          { guard: not('inMilestoneCurrency'), actions: refuse('currencyMismatch') },
          { guard: not('splitWithinHeld'), actions: refuse('splitAboveHeld') },
          { guard: not('proposalsLeft'), actions: refuse('proposalLimit') },
          { target: 'disputed', actions: 'proposeSettlement' },
        ],
        ACCEPT_SETTLEMENT: [
          { guard: 'responseDue', actions: refuse('responseDeadlinePassed') },
          { guard: not('expectedInMilestoneCurrency'), actions: refuse('currencyMismatch') },
          { guard: not('hasProposal'), actions: refuse('noProposal') },
          { guard: 'ownProposal', actions: refuse('ownProposal') },
          { guard: not('proposalAsExpected'), actions: refuse('proposalChanged') },
          { target: 'resolved', actions: 'acceptSettlement' },
        ],
        ESCALATE: [
          { guard: 'responseDue', actions: refuse('responseDeadlinePassed') },
          { guard: not('negotiationOver'), actions: refuse('negotiationOpen') },
          { guard: not('escalationsLeft'), actions: refuse('escalationLimit') },
          { guard: 'arbitrationFree', target: 'arbitration', actions: 'escalate' },
          { guard: not('feeCovered'), actions: refuse('feeNotCovered') },
          { target: 'escalating', actions: 'requestEscalation' },
        ],
        DEADLINE: [{ guard: 'responseDue', target: 'resolved', actions: 'grantClaim' }, { actions: refuse('notDue') }],
      },
    },
    escalating: {
      tags: ['holdsMoney', 'dispute'],
      description: 'Still disputed; the ledger is holding (or refusing) the arbitration fee of the escalating party.',
      on: {
        ESCALATION_SUCCEEDED: { target: 'arbitration', actions: 'escalate' },
        ESCALATION_FAILED: { target: 'disputed', actions: 'markEscalationFailed' },
      },
    },
    arbitration: {
      tags: ['holdsMoney', 'dispute'],
      description: 'Still disputed; an arbiter decides the split.',
      on: {
        RESOLVE: [
          { guard: not('inMilestoneCurrency'), actions: refuse('currencyMismatch') },
          { guard: not('splitWithinHeld'), actions: refuse('splitAboveHeld') },
          { target: 'resolved', actions: 'resolve' },
        ],
      },
    },
    released: { type: 'final', description: 'Final: everything held was released to the freelancer.' },
    cancelled: { type: 'final', description: 'Final: what was still held went back to the employer.' },
    resolved: { type: 'final', description: 'Final: the dispute ended and what was held was split between the parties.' },
  },
});

/** Who may read a milestone (GetMilestone, WatchMilestone): its two parties, and arbiters (who decide disputes). */
export function mayView(c: MilestoneContext, caller: { id: string; roles?: readonly string[] }): boolean {
  return caller.id === c.employerId || caller.id === c.freelancerId || !!caller.roles?.includes(ARBITER_ROLE);
}

/** The reasons of a cancellation request (the marketplace's list), as the proto's CancellationReason names them. */
export const CANCELLATION_REASONS: ReadonlySet<string> = new Set([
  'ACCIDENTALLY_CREATED',
  'NO_LONGER_NEEDED',
  'MISSED_DEADLINE',
  'TASK_NOT_COMPLETED',
  'OTHER',
]);

/**
 * The kinds of state, read from the machine's own marks (`type: 'final'` and its tags), so
 * each is written once, on the states: what the runtime, the ledger, the auditor and the
 * tests need to know of a state, by name.
 */
export type MilestoneTag = 'holdsMoney' | 'dispute' | 'timer' | 'unfunded' | 'holdPending';

function statesWhere(test: (node: { type: string; tags: readonly string[] }) => boolean): ReadonlySet<string> {
  return new Set(
    Object.entries(milestoneMachine.states)
      .filter(([, node]) => test(node))
      .map(([name]) => name),
  );
}

/** States after which nothing can happen to a milestone any more (`type: 'final'`). */
export const FINAL_STATES = statesWhere((n) => n.type === 'final');
/** States a dispute moves through ('dispute'). Their transitions may go past the event limit: the caps bound them. */
export const DISPUTE_STATES = statesWhere((n) => n.tags.includes('dispute'));
/** States that handle DEADLINE ('timer'): a timer can fire only in them (the read model shows `due_at` only there). */
export const TIMER_STATES = statesWhere((n) => n.tags.includes('timer'));
/** States with money in escrow ('holdsMoney'). */
export const HOLDING_STATES = statesWhere((n) => n.tags.includes('holdsMoney'));
/**
 * States that never held money ('unfunded'): a request, a funding that never happened. Their
 * read-model rows are exempt from amount = held + released + returned (migration 002's
 * constraint, src/ledger/audit.ts).
 */
export const UNFUNDED_STATES = statesWhere((n) => n.tags.includes('unfunded'));
/** The external statuses of the unfunded states, as the read model stores them. */
export const UNFUNDED_STATUSES: readonly string[] = [...new Set([...UNFUNDED_STATES].map(statusOf))];
/**
 * Statuses whose milestone has no hold posting at all: the unfunded ones, less those where
 * the ledger may hold while the milestone waits ('holdPending': a funding saga of an earlier version).
 */
export const NEVER_HELD_STATUSES: readonly string[] = [
  ...new Set([...UNFUNDED_STATES].filter((s) => !statesWhere((n) => n.tags.includes('holdPending')).has(s)).map(statusOf)),
];

/** Decides a milestone command: the permission table first, then the machine's state rules. */
export function decideMilestone(at: Position<MilestoneContext>, event: MilestoneEvent): Decision<MilestoneContext> {
  return decide(milestoneMachine, at, event, milestonePermission);
}
