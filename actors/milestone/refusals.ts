import type { Rejection } from '../decision.js';
import { PROPOSALS_MAX, ESCALATIONS_MAX, DISPUTES_MAX, EVIDENCE_MAX, type MilestoneContext, type MilestoneEvent } from './types.js';
import { disputeOf, escalationPossibleAt } from './money.js';

/** Every refusal the machine's state rules make, by name, and the one action that refuses. */

export function reject(code: Rejection['code'], reason: string, message: string): Rejection {
  return { code, reason, message };
}

/** A refusal of the machine's state rules: its gRPC code, its stable reason, and what it tells the caller. */
export interface Refusal {
  code: Rejection['code'];
  reason: string;
  message: (at: { context: MilestoneContext; event: MilestoneEvent }) => string;
}

/**
 * Every refusal the state rules make, by name: a transition refuses with `refuse(name)`. The
 * party rule's refusals are the permission table's (milestonePermission), asked before these.
 */
export const REFUSALS = {
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
    message: ({ context }) => `escalation is possible from ${escalationPossibleAt(context, disputeOf(context))}`,
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
  feeAttemptLimit: {
    code: 'FAILED_PRECONDITION',
    reason: 'FEE_ATTEMPT_LIMIT',
    message: () => `at most ${ESCALATIONS_MAX} attempts to pay the other party's arbitration fee`,
  },
  responseDeadlinePassed: {
    code: 'FAILED_PRECONDITION',
    reason: 'RESPONSE_DEADLINE_PASSED',
    message: ({ context }) => `the respondent did not answer by ${context.dueAt}: the claim is being granted`,
  },
  feeDeadlinePassed: {
    code: 'FAILED_PRECONDITION',
    reason: 'FEE_DEADLINE_PASSED',
    message: ({ context }) => `the other party did not pay its arbitration fee by ${context.dueAt}: the escalating party wins by default`,
  },
  feeAlreadyPaid: {
    code: 'FAILED_PRECONDITION',
    reason: 'FEE_ALREADY_PAID',
    message: () => "the escalating party paid its arbitration fee: the other party's is due",
  },
  reviewWindowPassed: {
    code: 'FAILED_PRECONDITION',
    reason: 'REVIEW_WINDOW_PASSED',
    message: ({ context }) => `the review window ended at ${context.dueAt}: what is held is being released`,
  },
  evidenceLimit: {
    code: 'FAILED_PRECONDITION',
    reason: 'EVIDENCE_LIMIT',
    message: () => `at most ${EVIDENCE_MAX} evidence references per party and dispute`,
  },
  disputeLimit: {
    code: 'FAILED_PRECONDITION',
    reason: 'DISPUTE_LIMIT',
    message: () => `at most ${DISPUTES_MAX} disputes per milestone`,
  },
  notFiler: {
    code: 'PERMISSION_DENIED',
    reason: 'NOT_FILER',
    message: ({ context }) => `only the filer (${context.dispute?.filerId ?? ''}) may withdraw the dispute`,
  },
  notRespondent: {
    code: 'PERMISSION_DENIED',
    reason: 'NOT_RESPONDENT',
    message: ({ context }) => `only the respondent (${context.dispute?.respondentId ?? ''}) may accept the claim`,
  },
  frozen: {
    code: 'FAILED_PRECONDITION',
    reason: 'MILESTONE_FROZEN',
    message: ({ context }) => `support staff froze the milestone: ${context.frozen?.reason ?? ''}`,
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

export type RefusalName = keyof typeof REFUSALS;

/** The machine's one refusal action, with the refusal's name as its parameter. */
export const refuse = (name: RefusalName) => ({ type: 'refuse', params: { name } }) as const;
