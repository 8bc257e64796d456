import { assertEvent, assign, not, setup } from 'xstate';
import { add, cmp, format, isZero, sub, zero } from '../money.js';
import { decide, type Decision, type Position } from '../decide.js';
import { feeOn } from '../terms.js';
import {
  PROPOSALS_MAX,
  ESCALATIONS_MAX,
  DISPUTES_MAX,
  EVIDENCE_MAX,
  type Dispute,
  type FreezableState,
  type MilestoneContext,
  type MilestoneEvent,
  initialMilestoneContext,
  type MilestoneTag,
} from './types.js';
import { type MilestoneStateName, statusOf } from './status.js';
import { later, reached, timeLeft } from './time.js';
import {
  releaseAmount,
  payoutFee,
  disputeOf,
  settlement,
  opened,
  claimGranted,
  escalationPossibleAt,
  clearing,
  feeDefault,
  secondFee,
  secondFeePayer,
} from './money.js';
import { reject, type Refusal, REFUSALS, type RefusalName, refuse } from './refusals.js';
import { milestonePermission } from './access.js';

/** The state machine: which command is legal in which state, and what it changes; the kinds of state, read from its tags. */

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
  { guard: not('disputesLeft'), actions: refuse('disputeLimit') },
  { target: 'disputed' as const, actions: { type: 'openDispute' as const, params: { from } } },
];

/**
 * The deadline a dispute state has, past which nothing but its timer's decision is accepted:
 * the respondent's answer (negotiation), the other party's arbitration fee (awaiting it), none
 * (arbitration).
 */
const DUE = {
  response: [{ guard: 'responseDue' as const, actions: refuse('responseDeadlinePassed') }],
  fee: [{ guard: 'feeDue' as const, actions: refuse('feeDeadlinePassed') }],
  none: [],
} as const;

type Due = keyof typeof DUE;

/** Evidence for the arbiter, while the dispute is open (not past its state's deadline, where the timer decides). */
const attachEvidenceTransition = (due: Due) => [
  ...DUE[due],
  { guard: not('evidenceLeft'), actions: refuse('evidenceLimit') },
  { actions: 'attachEvidence' as const },
];

/** The filer takes the dispute back: to the state it was opened from, the money still held. */
const withdrawDisputeTransition = [
  { guard: 'responseDue' as const, actions: refuse('responseDeadlinePassed') },
  { guard: not('byFiler'), actions: refuse('notFiler') },
  {
    guard: { type: 'disputeOpenedFrom' as const, params: { from: 'releaseRequested' as const } },
    target: 'releaseRequested' as const,
    actions: 'withdrawDispute' as const,
  },
  {
    guard: { type: 'disputeOpenedFrom' as const, params: { from: 'cancellationRequested' as const } },
    target: 'cancellationRequested' as const,
    actions: 'withdrawDispute' as const,
  },
  { target: 'funded' as const, actions: 'withdrawDispute' as const },
];

/** The respondent concedes: the filer gets its claim, the rest goes to the respondent. */
const acceptClaimTransition = (due: Due) => [
  ...DUE[due],
  { guard: not('byRespondent'), actions: refuse('notRespondent') },
  { target: 'resolved' as const, actions: 'acceptClaim' as const },
];

/** Accepting the other party's standing proposal ends the dispute with its split (in negotiation, awaiting a fee, in arbitration). */
const acceptSettlementTransition = (due: Due) => [
  ...DUE[due],
  { guard: not('expectedInMilestoneCurrency'), actions: refuse('currencyMismatch') },
  { guard: not('hasProposal'), actions: refuse('noProposal') },
  { guard: 'ownProposal' as const, actions: refuse('ownProposal') },
  { guard: not('proposalAsExpected'), actions: refuse('proposalChanged') },
  { target: 'resolved' as const, actions: 'acceptSettlement' as const },
];

/** A proposal of a split: in negotiation (where it answers the dispute), awaiting a fee and in arbitration (to settle before the arbiter decides). */
const proposeSettlementTransition = (due: Due, stay: 'disputed' | 'awaitingFee' | 'arbitration') => [
  ...DUE[due],
  { guard: not('inMilestoneCurrency'), actions: refuse('currencyMismatch') },
  { guard: not('splitWithinHeld'), actions: refuse('splitAboveHeld') },
  { guard: not('proposalsLeft'), actions: refuse('proposalLimit') },
  { target: stay, actions: 'proposeSettlement' as const },
];

/** The review window passed without a release or a dispute: everything held goes to the freelancer. */
const autoReleaseTransition = [
  { guard: 'autoReleaseDue' as const, target: 'released' as const, actions: 'autoRelease' as const },
  { actions: refuse('notDue') },
];

/** Support staff freeze a state that holds money with no saga under way; its timer stops. */
const freezeFrom = (from: FreezableState) => ({ target: 'frozen' as const, actions: { type: 'freeze' as const, params: { from } } });

const unfreezeTo = (to: FreezableState) => ({
  guard: { type: 'frozenFrom' as const, params: { from: to } },
  target: to,
  actions: 'unfreeze' as const,
});

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
    negotiationOver: ({ context, event }) => !!context.dispute && reached(event.at, escalationPossibleAt(context, context.dispute)),
    arbitrationFree: ({ context }) => isZero(context.terms.arbitrationFee),
    feeCovered: ({ context, event }) =>
      (event.type === 'ESCALATE' || event.type === 'PAY_ARBITRATION_FEE') &&
      (event.available === '' || cmp(event.available, context.terms.arbitrationFee) >= 0),
    // Terms that ask both parties for the arbitration fee (terms made before them ask the escalating party only).
    bothPay: ({ context }) => (context.terms.arbitrationFeeDeadlineMs ?? 0) > 0,
    byEscalator: ({ context, event }) => context.dispute?.escalatedBy === event.by.id,
    feeAttemptsLeft: ({ context }) => (context.dispute?.secondFeeAttempts ?? 0) < ESCALATIONS_MAX,
    feeDue: ({ context, event }) => context.dueKind === 'arbitration_fee' && reached(event.at, context.dueAt),
    autoReleaseDue: ({ context, event }) => context.dueKind === 'auto_release' && reached(event.at, context.dueAt),
    responseDue: ({ context, event }) => context.dueKind === 'dispute_response' && reached(event.at, context.dueAt),
    releaseWithinHeld: ({ context, event }) => event.type === 'RELEASE' && cmp(releaseAmount(context, event), context.held) <= 0,
    releaseEmptiesHeld: ({ context, event }) => event.type === 'RELEASE' && cmp(releaseAmount(context, event), context.held) === 0,
    cameFromReleaseRequested: ({ context }) => context.stateBeforeCancellationRequest === 'releaseRequested',
    byFiler: ({ context, event }) => context.dispute?.filerId === event.by.id,
    byRespondent: ({ context, event }) => context.dispute?.respondentId === event.by.id,
    disputeOpenedFrom: ({ context }, params: { from: NonNullable<Dispute['openedFrom']> }) => context.dispute?.openedFrom === params.from,
    disputesLeft: ({ context }) => disputeNumber(context) < DISPUTES_MAX,
    evidenceLeft: ({ context, event }) => context.evidence.filter((x) => x.byId === event.by.id).length < EVIDENCE_MAX,
    frozenFrom: ({ context }, params: { from: FreezableState }) => context.frozen?.from === params.from,
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
      const c = opened(
        { ...event, description: '', milestoneReason: '' },
        { employerId: event.employerId, freelancerId: event.freelancerId },
        'created',
      );
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
      // Funded like a create: from the employer's reservation of the amount plus the employer fee; with the review window the employer chose.
      const window = event.reviewWindowMs ?? 0;
      return {
        ...(window > 0 ? { terms: { ...context.terms, reviewWindowMs: window } } : {}),
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
    updateDescription: assign(({ context, event }) => {
      assertEvent(event, 'UPDATE_DESCRIPTION');
      return {
        description: event.description,
        updatedAt: event.at,
        emitted: { type: 'description_updated', data: { description: event.description, previous: context.description } },
      };
    }),
    requestChanges: assign(({ event }) => {
      assertEvent(event, 'REQUEST_CHANGES');
      return {
        dueAt: '',
        dueKind: '' as const,
        updatedAt: event.at,
        emitted: { type: 'changes_requested', data: { reason: event.reason } },
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
        emitted: {
          type: isZero(held) ? 'released' : 'partially_released',
          data: { amount, held, fee, ...clearing(context, amount, fee, event.at) },
        },
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
        emitted: {
          type: 'released',
          data: {
            amount: context.held,
            held: zero(context.currency),
            fee,
            automatic: true,
            ...clearing(context, context.held, fee, event.at),
          },
        },
      };
    }),
    openDispute: assign(({ context, event }, params: { from: NonNullable<Dispute['openedFrom']> }) => {
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
          openedFrom: params.from,
          autoReleaseLeftMs: context.dueKind === 'auto_release' ? timeLeft(context.dueAt, event.at) : 0,
          number: disputeNumber(context) + 1,
        },
        evidence: [],
        updatedAt: event.at,
        emitted: { type: 'dispute_opened', data: { reason: event.reason, claimedAmount: event.claim, respondentId, respondBy: dueAt } },
      };
    }),
    proposeSettlement: assign(({ context, event }) => {
      assertEvent(event, 'PROPOSE_SETTLEMENT');
      const d = disputeOf(context);
      const answers = event.by.id === d.respondentId;
      return {
        // The respondent's proposal answers the dispute: its response deadline ends (a fee's deadline does not).
        ...(answers && context.dueKind === 'dispute_response' ? { dueAt: '', dueKind: '' as const } : {}),
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
    attachEvidence: assign(({ context, event }) => {
      assertEvent(event, 'ATTACH_EVIDENCE');
      const { uri, sha256, note } = event;
      return {
        evidence: [...context.evidence, { byId: event.by.id, uri, sha256, note, at: event.at }],
        updatedAt: event.at,
        emitted: { type: 'evidence_attached', data: { uri, sha256, note } },
      };
    }),
    // Unanswered: the filer gets its claim; the rest of what is held goes to the other party.
    grantClaim: assign(({ context, event }) => settlement(context, claimGranted(context), 'claim_granted', event.at)),
    acceptClaim: assign(({ context, event }) => settlement(context, claimGranted(context), 'claim_accepted', event.at)),
    withdrawDispute: assign(({ context, event }): Partial<MilestoneContext> => {
      const d = disputeOf(context);
      const resumed = d.openedFrom ?? 'funded';
      // The review window the dispute stopped runs again with the time it had left (the clock stood still meanwhile).
      const left = resumed === 'funded' ? 0 : (d.autoReleaseLeftMs ?? 0);
      const dueAt = left > 0 ? later(event.at, left) : '';
      return {
        dueAt,
        dueKind: dueAt ? 'auto_release' : '',
        dispute: { ...d, outcome: 'withdrawn' },
        updatedAt: event.at,
        emitted: { type: 'dispute_withdrawn', data: { resumed: statusOf(resumed), ...(dueAt ? { autoReleaseAt: dueAt } : {}) } },
      };
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
      const paid = secondFee(d);
      const second = paid ? { secondFeePayerId: paid.payerId, secondArbitrationFee: paid.amount } : {};
      return {
        // In arbitration nothing is due: the arbiter decides.
        dueAt: '',
        dueKind: '' as const,
        dispute: { ...d, escalatedBy: by, answered: true, escalationFailureReason: '' },
        updatedAt: event.at,
        emitted: { type: 'escalated', data: { escalatorId: by, arbitrationFee: d.arbitrationFee, ...second } },
      };
    }),
    // Terms that ask both parties: the escalating party's fee is held; the other party's is due by the deadline,
    // or by the respondent's own answer deadline if that is later (a filer's escalation never shortens it).
    awaitFee: assign(({ context, event }) => {
      const d = disputeOf(context);
      const payerId = secondFeePayer(d);
      const feeDue = later(event.at, context.terms.arbitrationFeeDeadlineMs ?? 0);
      const answerDue = payerId === d.respondentId && context.dueKind === 'dispute_response' ? context.dueAt : '';
      const dueAt = answerDue && Date.parse(answerDue) > Date.parse(feeDue) ? answerDue : feeDue;
      return {
        dueAt,
        dueKind: 'arbitration_fee' as const,
        dispute: { ...d, answered: true, escalationFailureReason: '' },
        updatedAt: event.at,
        emitted: {
          type: 'arbitration_fee_due',
          data: { escalatorId: d.escalatedBy, arbitrationFee: d.arbitrationFee, payerId, payBy: dueAt },
        },
      };
    }),
    // The other party's account actor reserves its fee, or refuses: ARBITRATION_FEE_PAID or _FAILED follows. The deadline stays as it was.
    requestFee: assign(({ context, event }) => {
      const d = disputeOf(context);
      const amount = format(context.currency, context.terms.arbitrationFee);
      return {
        dispute: { ...d, secondFee: amount, secondFeeAttempts: (d.secondFeeAttempts ?? 0) + 1 },
        updatedAt: event.at,
        emitted: { type: 'arbitration_fee_requested', data: { amount, payerId: event.by.id, funding: 'account' } },
      };
    }),
    markFeeFailed: assign(({ context, event }) => {
      assertEvent(event, 'ARBITRATION_FEE_FAILED');
      const reason = event.reason;
      return {
        dispute: { ...disputeOf(context), secondFee: zero(context.currency), escalationFailureReason: reason },
        updatedAt: event.at,
        emitted: { type: 'arbitration_fee_failed', data: { reason } },
      };
    }),
    // The deadline passed without the other party's fee: the escalating party wins by default.
    defaultOnFee: assign(({ context, event }) => settlement(context, feeDefault(context), 'fee_unpaid', event.at)),
    markEscalationFailed: assign(({ context, event }) => {
      assertEvent(event, 'ESCALATION_FAILED');
      const reason = event.reason;
      return {
        dispute: { ...disputeOf(context), escalatedBy: '', arbitrationFee: zero(context.currency), escalationFailureReason: reason },
        updatedAt: event.at,
        emitted: { type: 'escalation_failed', data: { reason } },
      };
    }),
    freeze: assign(({ context, event }, params: { from: FreezableState }) => {
      assertEvent(event, 'FREEZE');
      // The running timer stops; what it had left is kept (0 when it was due already: it fires right after the unfreeze).
      const dueLeftMs = context.dueKind === '' ? 0 : timeLeft(context.dueAt, event.at);
      return {
        dueAt: '',
        dueKind: '' as const,
        frozen: { from: params.from, reason: event.reason, byId: event.by.id, at: event.at, dueKind: context.dueKind, dueLeftMs },
        updatedAt: event.at,
        emitted: { type: 'frozen', data: { reason: event.reason, previousStatus: statusOf(params.from) } },
      };
    }),
    unfreeze: assign(({ context, event }): Partial<MilestoneContext> => {
      assertEvent(event, 'UNFREEZE');
      const f = context.frozen;
      if (!f) throw new Error(`milestone ${context.id} is frozen without its freeze`);
      // The stopped timer runs again with the time it had left: a freeze neither shortens nor lengthens a window.
      const dueAt = f.dueKind === '' ? '' : later(event.at, f.dueLeftMs);
      // A dispute's negotiation window stood still too.
      const frozenMs = Math.max(0, Date.parse(event.at) - Date.parse(f.at));
      const d = context.dispute;
      return {
        dueAt,
        dueKind: f.dueKind,
        ...(d && (f.from === 'disputed' || f.from === 'awaitingFee' || f.from === 'arbitration')
          ? { dispute: { ...d, frozenMs: (d.frozenMs ?? 0) + frozenMs } }
          : {}),
        frozen: null,
        updatedAt: event.at,
        emitted: { type: 'unfrozen', data: { reason: event.reason, resumed: statusOf(f.from), ...(dueAt ? { dueAt } : {}) } },
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
        UPDATE_DESCRIPTION: { actions: 'updateDescription' },
        FREEZE: freezeFrom('funded'),
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
        // Revisions: back to funded, the review window stopped; the next RequestRelease starts a whole one.
        REQUEST_CHANGES: [
          { guard: 'autoReleaseDue', actions: refuse('reviewWindowPassed') },
          { target: 'funded', actions: 'requestChanges' },
        ],
        OPEN_DISPUTE: openDisputeFrom('releaseRequested'),
        DEADLINE: autoReleaseTransition,
        UPDATE_DESCRIPTION: { actions: 'updateDescription' },
        FREEZE: freezeFrom('releaseRequested'),
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
        UPDATE_DESCRIPTION: { actions: 'updateDescription' },
        FREEZE: freezeFrom('cancellationRequested'),
      },
    },
    disputed: {
      tags: ['holdsMoney', 'dispute', 'timer'],
      description: 'Frozen: no release or cancel. The parties negotiate; the respondent must answer before dueAt.',
      on: {
        // Past an unanswered deadline nothing but the timer's grant is accepted.
        PROPOSE_SETTLEMENT: proposeSettlementTransition('response', 'disputed'),
        ACCEPT_SETTLEMENT: acceptSettlementTransition('response'),
        ACCEPT_CLAIM: acceptClaimTransition('response'),
        WITHDRAW_DISPUTE: withdrawDisputeTransition,
        ATTACH_EVIDENCE: attachEvidenceTransition('response'),
        ESCALATE: [
          { guard: 'responseDue', actions: refuse('responseDeadlinePassed') },
          { guard: not('negotiationOver'), actions: refuse('negotiationOpen') },
          { guard: not('escalationsLeft'), actions: refuse('escalationLimit') },
          { guard: 'arbitrationFree', target: 'arbitration', actions: 'escalate' },
          { guard: not('feeCovered'), actions: refuse('feeNotCovered') },
          { target: 'escalating', actions: 'requestEscalation' },
        ],
        DEADLINE: [{ guard: 'responseDue', target: 'resolved', actions: 'grantClaim' }, { actions: refuse('notDue') }],
        FREEZE: freezeFrom('disputed'),
      },
    },
    escalating: {
      tags: ['holdsMoney', 'dispute'],
      description: "Still disputed; the escalating party's account is holding (or refusing) its arbitration fee.",
      on: {
        ESCALATION_SUCCEEDED: [
          { guard: 'bothPay', target: 'awaitingFee', actions: 'awaitFee' },
          { target: 'arbitration', actions: 'escalate' },
        ],
        ESCALATION_FAILED: { target: 'disputed', actions: 'markEscalationFailed' },
      },
    },
    awaitingFee: {
      tags: ['holdsMoney', 'dispute', 'timer'],
      description:
        'Still disputed; the escalating party paid its arbitration fee and the other party must pay its own before dueAt, or lose by default. The parties may still settle.',
      on: {
        PAY_ARBITRATION_FEE: [
          ...DUE.fee,
          { guard: 'byEscalator', actions: refuse('feeAlreadyPaid') },
          { guard: not('feeAttemptsLeft'), actions: refuse('feeAttemptLimit') },
          { guard: not('feeCovered'), actions: refuse('feeNotCovered') },
          { target: 'payingFee', actions: 'requestFee' },
        ],
        PROPOSE_SETTLEMENT: proposeSettlementTransition('fee', 'awaitingFee'),
        ACCEPT_SETTLEMENT: acceptSettlementTransition('fee'),
        ACCEPT_CLAIM: acceptClaimTransition('fee'),
        ATTACH_EVIDENCE: attachEvidenceTransition('fee'),
        DEADLINE: [{ guard: 'feeDue', target: 'resolved', actions: 'defaultOnFee' }, { actions: refuse('notDue') }],
        FREEZE: freezeFrom('awaitingFee'),
      },
    },
    payingFee: {
      tags: ['holdsMoney', 'dispute'],
      description: "Still disputed; the other party's account is holding (or refusing) its arbitration fee.",
      on: {
        ARBITRATION_FEE_PAID: { target: 'arbitration', actions: 'escalate' },
        ARBITRATION_FEE_FAILED: { target: 'awaitingFee', actions: 'markFeeFailed' },
      },
    },
    arbitration: {
      tags: ['holdsMoney', 'dispute'],
      description:
        'Still disputed; an arbiter decides the split, unless the parties settle first (a proposal accepted, or the claim conceded).',
      on: {
        PROPOSE_SETTLEMENT: proposeSettlementTransition('none', 'arbitration'),
        ACCEPT_SETTLEMENT: acceptSettlementTransition('none'),
        ACCEPT_CLAIM: acceptClaimTransition('none'),
        ATTACH_EVIDENCE: attachEvidenceTransition('none'),
        RESOLVE: [
          { guard: not('inMilestoneCurrency'), actions: refuse('currencyMismatch') },
          { guard: not('splitWithinHeld'), actions: refuse('splitAboveHeld') },
          { target: 'resolved', actions: 'resolve' },
        ],
        FREEZE: freezeFrom('arbitration'),
      },
    },
    frozen: {
      tags: ['holdsMoney'],
      description:
        'Support staff froze it: no party command, no arbiter and no timer moves money until it is unfrozen, back to the state it was frozen in.',
      on: {
        UNFREEZE: [
          unfreezeTo('funded'),
          unfreezeTo('releaseRequested'),
          unfreezeTo('cancellationRequested'),
          unfreezeTo('disputed'),
          unfreezeTo('awaitingFee'),
          unfreezeTo('arbitration'),
        ],
        // A reservation's void changes nothing here, as anywhere a milestone exists.
        VOID_RESERVATION: {},
        '*': { actions: refuse('frozen') },
      },
    },
    released: { type: 'final', description: 'Final: everything held was released to the freelancer.' },
    cancelled: { type: 'final', description: 'Final: what was still held went back to the employer.' },
    resolved: { type: 'final', description: 'Final: the dispute ended and what was held was split between the parties.' },
  },
});

/** How many disputes the milestone had (one, for a dispute of an earlier version, which did not count them). */
function disputeNumber(c: MilestoneContext): number {
  return c.dispute ? (c.dispute.number ?? 1) : 0;
}

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
