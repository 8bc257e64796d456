import { assign, not, setup } from 'xstate';
import { add, cmp, isZero, sub, zero } from '../src/money.js';
import type { CommandBase, DecisionSlots, Rejection } from './decision.js';
import { SYSTEM_CALLER } from './decision.js';

/**
 * The milestone state machine: the single place that says which command is legal in which
 * state, and for whom. It is pure (guards and context updates only); the actor runtime
 * decides with xstate's `transition` and appends what the machine emitted.
 *
 * Money invariant kept by every transition: amount = held + released + returned once funded.
 */

export interface MilestoneContext extends DecisionSlots {
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
  /** The reason given with the last cancellation request or cancellation. */
  cancellationReason: string;
  /** Why the funding saga refused the hold (e.g. INSUFFICIENT_FUNDS). */
  fundingFailureReason: string;
  /** The state a cancellation request came from, to go back to if the freelancer rejects it. */
  stateBeforeCancellationRequest: string;
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
    })
  | (CommandBase & { type: 'ACCEPT_REQUEST' })
  | (CommandBase & { type: 'REJECT_REQUEST' })
  | (CommandBase & { type: 'WITHDRAW_REQUEST' })
  | (CommandBase & { type: 'REJECT_CANCELLATION' })
  | (CommandBase & { type: 'FUNDING_SUCCEEDED' })
  | (CommandBase & { type: 'FUNDING_FAILED'; reason: string })
  | (CommandBase & { type: 'REQUEST_RELEASE' })
  /** `amount` and `currency` empty mean "everything still held". */
  | (CommandBase & { type: 'RELEASE'; amount: string; currency: string })
  | (CommandBase & { type: 'REQUEST_CANCELLATION'; reason: string })
  /** `awardAccepted` is read from the project by the caller of the machine, at command time. */
  | (CommandBase & { type: 'CANCEL'; reason: string; awardAccepted: boolean });

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
} as const;
export type MilestoneStateName = keyof typeof MILESTONE_STATUS;
export type MilestoneStatus = (typeof MILESTONE_STATUS)[MilestoneStateName];

const isEmployer = (c: MilestoneContext, e: MilestoneEvent) => e.by.id === c.employerId;
const isFreelancer = (c: MilestoneContext, e: MilestoneEvent) => e.by.id === c.freelancerId;
const isSystem = (_c: MilestoneContext, e: MilestoneEvent) => e.by.id === SYSTEM_CALLER;

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
  FUNDING_SUCCEEDED: (c, e) => (isSystem(c, e) ? null : 'SYSTEM_ONLY'),
  FUNDING_FAILED: (c, e) => (isSystem(c, e) ? null : 'SYSTEM_ONLY'),
  REQUEST_RELEASE: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  RELEASE: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  REQUEST_CANCELLATION: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  // Once the freelancer accepted the award only the freelancer may cancel (return the money).
  CANCEL: (c, e) => {
    if (isFreelancer(c, e)) return null;
    if (isEmployer(c, e)) return e.awardAccepted ? 'AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL' : null;
    return 'NOT_PARTY';
  },
};

function refusalFor(c: MilestoneContext, e: MilestoneEvent): string | null {
  const rule = partyRefusal[e.type] as (c: MilestoneContext, e: MilestoneEvent) => string | null;
  return rule(c, e);
}

/** The amount a RELEASE moves: the requested one, or everything held. */
export function releaseAmount(c: MilestoneContext, e: Extract<MilestoneEvent, { type: 'RELEASE' }>): string {
  return e.amount === '' ? c.held : e.amount;
}

function reject(code: Rejection['code'], reason: string, message: string): Rejection {
  return { code, reason, message };
}

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
  cancellationReason: '',
  fundingFailureReason: '',
  stateBeforeCancellationRequest: '',
  rejection: null,
  emitted: null,
};

/** The context of a milestone that comes into being, by a create or a request: nothing held yet. */
function opened(
  e: { milestoneId: string; projectId: string; description: string; currency: string; amount: string; at: string },
  parties: { employerId: string; freelancerId: string },
  emittedType: 'created' | 'requested',
): Partial<MilestoneContext> {
  const z = zero(e.currency);
  return {
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
    emitted: { type: emittedType, data: { amount: e.amount } },
  };
}

const releaseTransitions = [
  { guard: not('mayIssue'), actions: 'rejectParty' as const },
  { guard: not('releaseInMilestoneCurrency'), actions: 'rejectCurrencyMismatch' as const },
  { guard: not('releaseWithinHeld'), actions: 'rejectReleaseAboveHeld' as const },
  { guard: 'releaseEmptiesHeld' as const, target: 'released' as const, actions: 'release' as const },
  // A partial release keeps the milestone in its current state with the rest still held.
  { actions: 'release' as const },
];

const cancelTransition = [
  { guard: not('mayIssue'), actions: 'rejectParty' as const },
  { target: 'cancelled' as const, actions: 'cancel' as const },
];

export const milestoneMachine = setup({
  types: {
    context: {} as MilestoneContext,
    events: {} as MilestoneEvent,
  },
  guards: {
    mayIssue: ({ context, event }) => refusalFor(context, event) === null,
    releaseInMilestoneCurrency: ({ context, event }) =>
      event.type === 'RELEASE' && (event.amount === '' || event.currency === context.currency),
    releaseWithinHeld: ({ context, event }) =>
      event.type === 'RELEASE' && cmp(releaseAmount(context, event), context.held) <= 0,
    releaseEmptiesHeld: ({ context, event }) =>
      event.type === 'RELEASE' && cmp(releaseAmount(context, event), context.held) === 0,
    cameFromReleaseRequested: ({ context }) => context.stateBeforeCancellationRequest === 'releaseRequested',
  },
  actions: {
    rejectParty: assign({
      rejection: ({ context, event }) =>
        reject('PERMISSION_DENIED', refusalFor(context, event) ?? 'NOT_PARTY', `caller may not ${event.type} this milestone`),
    }),
    rejectInState: assign({
      rejection: ({ event }) => reject('FAILED_PRECONDITION', 'ILLEGAL_IN_STATUS', `${event.type} is not allowed in the milestone's current status`),
    }),
    rejectNotFound: assign({
      rejection: () => reject('NOT_FOUND', 'MILESTONE_NOT_FOUND', 'no such milestone'),
    }),
    rejectCurrencyMismatch: assign({
      rejection: ({ context }) =>
        reject('INVALID_ARGUMENT', 'CURRENCY_MISMATCH', `the milestone is in ${context.currency}`),
    }),
    rejectReleaseAboveHeld: assign({
      rejection: ({ context }) =>
        reject('FAILED_PRECONDITION', 'AMOUNT_EXCEEDS_HELD', `release amount exceeds the ${context.held} ${context.currency} still held`),
    }),
    create: assign(({ event }) =>
      event.type !== 'CREATE' ? {} : opened(event, { employerId: event.by.id, freelancerId: event.freelancerId }, 'created'),
    ),
    request: assign(({ event }) =>
      event.type !== 'REQUEST' ? {} : opened(event, { employerId: event.employerId, freelancerId: event.by.id }, 'requested'),
    ),
    acceptRequest: assign(({ context, event }) => ({
      updatedAt: event.at,
      // Funds it exactly like a create: the ledger holds the amount on this event.
      emitted: { type: 'request_accepted', data: { amount: context.amount } },
    })),
    rejectRequest: assign(({ event }) => ({ updatedAt: event.at, emitted: { type: 'request_rejected', data: {} } })),
    withdrawRequest: assign(({ event }) => ({ updatedAt: event.at, emitted: { type: 'request_withdrawn', data: {} } })),
    rejectCancellation: assign(({ context, event }) => ({
      updatedAt: event.at,
      stateBeforeCancellationRequest: '',
      emitted: { type: 'cancellation_rejected', data: { resumed: MILESTONE_STATUS[(context.stateBeforeCancellationRequest || 'funded') as MilestoneStateName] } },
    })),
    markFunded: assign(({ context, event }) => ({
      held: context.amount,
      updatedAt: event.at,
      emitted: { type: 'funded', data: { amount: context.amount } },
    })),
    markFundingFailed: assign(({ event }) => {
      const reason = event.type === 'FUNDING_FAILED' ? event.reason : '';
      return { fundingFailureReason: reason, updatedAt: event.at, emitted: { type: 'funding_failed', data: { reason } } };
    }),
    markReleaseRequested: assign(({ event }) => ({
      updatedAt: event.at,
      emitted: { type: 'release_requested', data: {} },
    })),
    release: assign(({ context, event }) => {
      if (event.type !== 'RELEASE') return {};
      const amount = releaseAmount(context, event);
      const held = sub(context.currency, context.held, amount);
      return {
        held,
        released: add(context.currency, context.released, amount),
        updatedAt: event.at,
        emitted: { type: isZero(held) ? 'released' : 'partially_released', data: { amount, held } },
      };
    }),
    markCancellationRequested: assign(({ event }, params: { from: MilestoneStateName }) => {
      const reason = event.type === 'REQUEST_CANCELLATION' ? event.reason : '';
      return {
        cancellationReason: reason,
        stateBeforeCancellationRequest: params.from,
        updatedAt: event.at,
        emitted: { type: 'cancellation_requested', data: { reason } },
      };
    }),
    cancel: assign(({ context, event }) => {
      const reason = event.type === 'CANCEL' ? event.reason : '';
      return {
        held: zero(context.currency),
        returned: add(context.currency, context.returned, context.held),
        cancellationReason: reason,
        updatedAt: event.at,
        emitted: { type: 'cancelled', data: { amount: context.held, reason } },
      };
    }),
  },
}).createMachine({
  id: 'milestone',
  initial: 'new',
  context: initialMilestoneContext,
  // Fallbacks, taken when the current state has no enabled transition for a command:
  // first the party rule, then "not in this status". Wrong party always wins over wrong state.
  on: {
    '*': [{ guard: not('mayIssue'), actions: 'rejectParty' }, { actions: 'rejectInState' }],
  },
  states: {
    new: {
      description: 'No milestone yet: only CREATE and REQUEST are meaningful; anything else is NOT_FOUND.',
      on: {
        CREATE: { target: 'pendingFunding', actions: 'create' },
        REQUEST: { target: 'requested', actions: 'request' },
        '*': { actions: 'rejectNotFound' },
      },
    },
    requested: {
      description: 'The freelancer proposed it; no money moves until the employer accepts.',
      on: {
        ACCEPT_REQUEST: { guard: 'mayIssue', target: 'pendingFunding', actions: 'acceptRequest' },
        REJECT_REQUEST: { guard: 'mayIssue', target: 'requestRejected', actions: 'rejectRequest' },
        WITHDRAW_REQUEST: { guard: 'mayIssue', target: 'requestWithdrawn', actions: 'withdrawRequest' },
      },
    },
    requestRejected: { description: 'Final: the employer declined the request; no money moved.' },
    requestWithdrawn: { description: 'Final: the freelancer withdrew the request; no money moved.' },
    pendingFunding: {
      description: 'Created; the ledger worker is holding (or refusing) the employer funds.',
      on: {
        FUNDING_SUCCEEDED: { guard: 'mayIssue', target: 'funded', actions: 'markFunded' },
        FUNDING_FAILED: { guard: 'mayIssue', target: 'fundingFailed', actions: 'markFundingFailed' },
      },
    },
    fundingFailed: { description: 'Final: the hold was refused; no money moved.' },
    funded: {
      description: 'The amount is held in escrow; work may proceed.',
      on: {
        REQUEST_RELEASE: { guard: 'mayIssue', target: 'releaseRequested', actions: 'markReleaseRequested' },
        RELEASE: releaseTransitions,
        REQUEST_CANCELLATION: {
          guard: 'mayIssue',
          target: 'cancellationRequested',
          actions: { type: 'markCancellationRequested', params: { from: 'funded' } },
        },
        CANCEL: cancelTransition,
      },
    },
    releaseRequested: {
      description: 'The freelancer asked the employer to release; money still held.',
      on: {
        RELEASE: releaseTransitions,
        REQUEST_CANCELLATION: {
          guard: 'mayIssue',
          target: 'cancellationRequested',
          actions: { type: 'markCancellationRequested', params: { from: 'releaseRequested' } },
        },
        CANCEL: cancelTransition,
      },
    },
    cancellationRequested: {
      description: 'The employer asked the freelancer to cancel; money still held.',
      on: {
        RELEASE: releaseTransitions,
        CANCEL: cancelTransition,
        // The freelancer keeps the contract: back to where the request came from.
        REJECT_CANCELLATION: [
          { guard: not('mayIssue'), actions: 'rejectParty' },
          { guard: 'cameFromReleaseRequested', target: 'releaseRequested', actions: 'rejectCancellation' },
          { target: 'funded', actions: 'rejectCancellation' },
        ],
      },
    },
    released: { description: 'Final: everything held was released to the freelancer.' },
    cancelled: { description: 'Final: what was still held went back to the employer.' },
  },
});

/** Who may read a milestone (GetMilestone, WatchMilestone): its two parties. */
export function mayView(c: MilestoneContext, caller: { id: string }): boolean {
  return caller.id === c.employerId || caller.id === c.freelancerId;
}

/** States after which nothing can happen to a milestone any more. */
export const FINAL_STATES: ReadonlySet<string> = new Set(['fundingFailed', 'released', 'cancelled', 'requestRejected', 'requestWithdrawn']);
