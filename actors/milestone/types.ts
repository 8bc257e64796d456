import type { CommandBase, DecisionSlots } from '../decision.js';
import type { MilestoneEmitted } from '../events.js';
import { DEFAULT_TERMS, type Terms } from '../terms.js';

/** The milestone's context, events and commands, and the fields its events carry. */

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
  /** Why the last escalation (or payment of the second fee) failed (e.g. INSUFFICIENT_FUNDS). */
  escalationFailureReason: string;
  /**
   * With terms that ask both parties (arbitrationFeeDeadlineMs), the other party's arbitration
   * fee, set while it is being charged and once paid; '0' or absent before, after a failed
   * attempt, and under the one-sided rule. Its payer is the party that did not escalate
   * (secondFee() in money.ts).
   */
  secondFee?: string;
  /** Attempts to pay that second fee (capped like escalation attempts, counted apart from them). */
  secondFeeAttempts?: number;
  /** Proposals and escalation attempts made, by party id: both are capped, so a dispute has a bounded number of events. */
  proposalsBy: Record<string, number>;
  escalationsBy: Record<string, number>;
  /**
   * How it ended: settled (an accepted proposal), claim_granted (the response deadline passed),
   * claim_accepted (the respondent conceded), arbitrated, fee_unpaid (the other party did not pay
   * its arbitration fee in time: the escalating party won by default), or withdrawn (by the
   * filer, with the money still held); '' while open.
   */
  outcome: '' | 'settled' | 'claim_granted' | 'claim_accepted' | 'arbitrated' | 'fee_unpaid' | 'withdrawn';
  /** The decided amount for the freelancer, once it ended. */
  freelancerAmount: string;
  /**
   * The state the dispute was opened from, where a withdrawal goes back to, and the time the
   * review window had left then (ms; 0 when none ran), which a withdrawal gives back. Absent
   * in disputes opened by an earlier version: those go back to funded, with no timer.
   */
  openedFrom?: 'funded' | 'releaseRequested' | 'cancellationRequested';
  autoReleaseLeftMs?: number;
  /** How long the dispute was frozen (ms, summed): the negotiation window does not run meanwhile. */
  frozenMs?: number;
  /** Which dispute of the milestone this is (1, 2, ...): a withdrawn one may be followed by another, up to DISPUTES_MAX. */
  number?: number;
}

/** A reference to evidence a party attached to the open dispute: where it is, its SHA-256 (hex), a note. The file itself stays with the marketplace. */
export interface Evidence {
  byId: string;
  uri: string;
  sha256: string;
  note: string;
  at: string;
}

/** Evidence references per party and dispute (the events that attach them are bounded by it). */
export const EVIDENCE_MAX = 5;

/** Disputes per milestone: a withdrawn dispute can be followed by another, so their count (and their events) is capped. */
export const DISPUTES_MAX = 3;

/** Per party and dispute: proposals, and escalation attempts (a refused one costs nothing, so it is capped too). */
export const PROPOSALS_MAX = 10;

export const ESCALATIONS_MAX = 3;

/** The states support staff may freeze: those with money held and no saga under way. */
export type FreezableState = 'funded' | 'releaseRequested' | 'cancellationRequested' | 'disputed' | 'awaitingFee' | 'arbitration';

/** A freeze by support staff: why, by whom, since when, the state to go back to, and the timer it stopped with the time that timer had left. */
export interface Freeze {
  from: FreezableState;
  reason: string;
  byId: string;
  at: string;
  dueKind: DueKind;
  dueLeftMs: number;
}

/** Timers a milestone may be waiting on; `dueAt` says when. */
export type DueKind = '' | 'dispute_response' | 'auto_release' | 'arbitration_fee';

export interface MilestoneContext extends DecisionSlots<MilestoneEmitted> {
  id: string;
  projectId: string;
  employerId: string;
  freelancerId: string;
  description: string;
  /** What the milestone pays for: one of MILESTONE_REASONS, '' when not given. */
  milestoneReason: string;
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
  /** The evidence references of the current (or last) dispute, oldest first; emptied when a dispute opens. */
  evidence: Evidence[];
  /** Set while support staff hold the milestone frozen; null otherwise. */
  frozen: Freeze | null;
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
      milestoneReason: string;
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
      milestoneReason: string;
      terms: Terms;
    })
  /** `reviewWindowMs` (0 or absent: none) sets the review window of auto-release the milestone gets, as CreateMilestone's does. */
  | (CommandBase & { type: 'ACCEPT_REQUEST'; reviewWindowMs?: number } & Funding)
  | (CommandBase & { type: 'REJECT_REQUEST' })
  | (CommandBase & { type: 'WITHDRAW_REQUEST' })
  | (CommandBase & { type: 'REJECT_CANCELLATION' })
  | (CommandBase & { type: 'FUNDING_SUCCEEDED' })
  | (CommandBase & { type: 'FUNDING_FAILED'; reason: string })
  | (CommandBase & { type: 'REQUEST_RELEASE' })
  /** The employer corrects the description (while money is held and no dispute is open). */
  | (CommandBase & { type: 'UPDATE_DESCRIPTION'; description: string })
  /** The employer asks for changes after a release request: back to funded, the review window stopped until the next request. */
  | (CommandBase & { type: 'REQUEST_CHANGES'; reason: string })
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
  /** The other party pays its arbitration fee, when the terms ask both; `available` as for ESCALATE. */
  | (CommandBase & { type: 'PAY_ARBITRATION_FEE'; available: string })
  /** The filer takes its dispute back, in negotiation: the milestone returns to where it was, the money still held. */
  | (CommandBase & { type: 'WITHDRAW_DISPUTE' })
  /** The respondent concedes: the filer's claim is granted at once (in negotiation or arbitration). */
  | (CommandBase & { type: 'ACCEPT_CLAIM' })
  /** A party attaches a reference to evidence for the arbiter, while the dispute is open. */
  | (CommandBase & { type: 'ATTACH_EVIDENCE'; uri: string; sha256: string; note: string })
  /** Support staff stop every party command and timer (FROZEN), and let it go again. */
  | (CommandBase & { type: 'FREEZE'; reason: string })
  | (CommandBase & { type: 'UNFREEZE'; reason: string })
  | (CommandBase & { type: 'ESCALATION_SUCCEEDED' })
  | (CommandBase & { type: 'ESCALATION_FAILED'; reason: string })
  | (CommandBase & { type: 'ARBITRATION_FEE_PAID' })
  | (CommandBase & { type: 'ARBITRATION_FEE_FAILED'; reason: string })
  | (CommandBase & { type: 'RESOLVE'; currency: string; freelancerAmount: string })
  /** A timer of the milestone came due; the machine checks `at` against `dueAt`. */
  | (CommandBase & { type: 'DEADLINE' });

export type MilestoneCommandType = MilestoneEvent['type'];

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
    'milestoneReason',
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
    'evidence',
    'frozen',
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
  milestoneReason: '',
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
  evidence: [],
  frozen: null,
  rejection: null,
  emitted: null,
};

/** What a milestone pays for, as the proto's MilestoneReason names them. */
export const MILESTONE_REASONS: ReadonlySet<string> = new Set([
  'MILESTONE_REASON_FULL_PAYMENT',
  'MILESTONE_REASON_PARTIAL_PAYMENT',
  'MILESTONE_REASON_TASK_DESCRIPTION',
  'MILESTONE_REASON_OTHER',
]);

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
