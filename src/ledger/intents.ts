import type { MilestoneContext } from '../../actors/milestone/index.js';
import { initialMilestoneContext, MILESTONE_EVENT_CONTEXT, statusOf } from '../../actors/milestone/index.js';
import type { CloudEvent } from '../events/cloudevent.js';
import { eventType } from '../events/cloudevent.js';
import { carriedFields, eventState, type EntityEventData, type EntityState } from '../runtime/entity.js';
import type { ArbitrationFeeLeg, Intent, MilestoneIntent } from './postings.js';
import { isZero } from '../../actors/money.js';
import { invariant } from '../errors.js';
import type { AccountEmitted, MilestoneEmitted } from '../../actors/events.js';
import { initialReviewContext } from '../../actors/review.machine.js';
import type { AccountEventData } from '../app/funds.js';
import { parseEventType, validateChange } from '../events/schemas.js';

/** The data of escrow.account.deposit_requested.v1 and escrow.account.withdrawal_requested.v1. */
export interface AccountRequestData {
  userId: string;
  currency: string;
  amount: string;
  externalReference: string;
}

export const ACCOUNT_EVENT = {
  deposit: eventType('account', 'deposit_requested'),
  withdrawal: eventType('account', 'withdrawal_requested'),
} as const;

export const REVIEW_SUBMITTED = eventType('review', 'submitted');

/** A review as the read model keeps it. */
export interface ReviewRow {
  eventId: string;
  projectId: string;
  reviewerId: string;
  revieweeId: string;
  rating: number;
  comment: string;
  at: string;
}

export interface Classified {
  intent: Intent | null;
  /** The milestone state after the event, for the read model (fields the event does not carry at their initial value)... */
  milestone: EntityState<MilestoneContext> | null;
  /** ...and the ones of MILESTONE_EVENT_CONTEXT it carries. */
  carried?: Partial<MilestoneContext>;
  review?: ReviewRow;
}

/** What one event of the stream means to the ledger. Events it has no use for classify as empty. */
export function classify(seq: number, event: CloudEvent): Classified {
  // Only the gateways publish here; anything that does not have their shape (a message put
  // on the subjects by hand) is not a money event and is left alone.
  if (event.type.startsWith('escrow.milestone.')) {
    const data = event.data as unknown as EntityEventData<MilestoneContext>;
    // Events leave out the fields at their initial value and the ones they do not change (the
    // runtime's compact context): the ledger needs the parties and the currency, which every
    // event carries; the read model takes the others from the event that carried them.
    const state =
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an event's JSON is checked, not trusted, to have its type's shape
      data?.state?.context && typeof data.state.context === 'object'
        ? eventState({ subject: event.subject, time: event.time, data }, initialMilestoneContext, MILESTONE_EVENT_CONTEXT)
        : undefined;
    if (!isMilestoneState(state)) return { intent: null, milestone: null };
    const carried = carriedFields<MilestoneContext>(MILESTONE_EVENT_CONTEXT, data.state.context);
    const parsed = parseEventType(event.type);
    // A signed event whose change does not have its type's shape is the engine's bug: the
    // worker moves it to the quarantine (a broken invariant), never posts a guess.
    const wrong = parsed ? validateChange('milestone', parsed.type, data.change) : `unknown type ${event.type}`;
    invariant(wrong === null, `event ${event.id} (${event.type}) has a change of the wrong shape: ${wrong}`);
    const money = parsed ? postingOf({ type: parsed.type, data: data.change } as MilestoneEmitted) : null;
    const intent: Intent | null =
      money && !isZero(money.amount)
        ? money.kind === 'unreserve'
          ? {
              kind: 'unreserve',
              eventId: event.id,
              seq,
              userId: state.context.employerId,
              currency: state.context.currency,
              amount: money.amount,
              reference: '',
              reservationId: money.reservationId,
              milestoneId: state.id,
            }
          : {
              ...money,
              kind: money.kind,
              eventId: event.id,
              seq,
              milestoneId: state.id,
              employerId: state.context.employerId,
              freelancerId: state.context.freelancerId,
              currency: state.context.currency,
            }
        : null;
    return { intent, milestone: state, carried };
  }
  if (event.type.startsWith('escrow.account.') && (event.data as { change?: unknown } | undefined)?.change !== undefined) {
    return { intent: accountIntent(seq, event), milestone: null };
  }
  if (event.type === ACCOUNT_EVENT.deposit || event.type === ACCOUNT_EVENT.withdrawal) {
    const d = event.data as unknown as AccountRequestData;
    if (!isAccountRequest(d)) return { intent: null, milestone: null };
    return {
      intent: {
        kind: event.type === ACCOUNT_EVENT.deposit ? 'deposit' : 'withdrawal',
        eventId: event.id,
        seq,
        userId: d.userId,
        currency: d.currency,
        amount: d.amount,
        reference: d.externalReference,
      },
      milestone: null,
    };
  }
  if (event.type === REVIEW_SUBMITTED) {
    // Checked field by field below: an event's JSON is not trusted to have its type's shape.
    const stored = (event.data as { state?: { context?: Record<string, unknown> } } | null | undefined)?.state?.context;
    // Events leave out the fields at their initial value (an empty comment).
    const r = stored ? { ...initialReviewContext, ...stored } : undefined;
    if (
      !r ||
      typeof r.projectId !== 'string' ||
      typeof r.reviewerId !== 'string' ||
      typeof r.revieweeId !== 'string' ||
      typeof r.comment !== 'string'
    ) {
      return { intent: null, milestone: null };
    }
    if (!Number.isInteger(r.rating) || r.rating < 1 || r.rating > 5) return { intent: null, milestone: null };
    return {
      intent: null,
      milestone: null,
      review: {
        eventId: event.id,
        projectId: r.projectId,
        reviewerId: r.reviewerId,
        revieweeId: r.revieweeId,
        rating: r.rating,
        comment: r.comment.replaceAll('\u0000', ''),
        at: event.time,
      },
    };
  }
  return { intent: null, milestone: null };
}

type MilestoneMoney =
  | Pick<MilestoneIntent, 'kind' | 'amount' | 'fee' | 'freelancerAmount' | 'payerId' | 'arbitrationFees' | 'reservationId' | 'clearsAt'>
  | { kind: 'unreserve'; amount: string; reservationId: string };

/**
 * The money an account actor's event moves, read by its type from its typed change. The
 * debits (reservations, arbitration fees, withdrawals) were decided by the actor.
 */
function accountIntent(seq: number, event: CloudEvent): Intent | null {
  const d = event.data as unknown as AccountEventData;
  const parsed = parseEventType(event.type);
  const wrong = parsed ? validateChange('account', parsed.type, d.change) : `unknown type ${event.type}`;
  invariant(
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an event's JSON is checked, not trusted, to have its type's shape
    wrong === null && typeof d.state?.userId === 'string',
    `event ${event.id} (${event.type}) has data of the wrong shape: ${wrong ?? 'no state'}`,
  );
  if (!parsed) return null; // refused above: unknown type
  const e = { type: parsed.type, data: d.change } as AccountEmitted;
  const userId = d.state.userId;
  const base = { eventId: event.id, seq, userId, currency: e.data.currency, amount: e.data.amount, reference: '' };
  switch (e.type) {
    case 'fee_refused':
      return null;
    case 'deposit_requested':
      return { ...base, kind: 'deposit', reference: e.data.externalReference };
    case 'withdrawal_requested':
      return { ...base, kind: 'withdrawal', reference: e.data.externalReference, decided: true };
    case 'funds_reserved':
      return { ...base, kind: 'reserve', reservationId: event.id, milestoneId: e.data.milestoneId, fee: e.data.fee, decided: true };
    case 'reservation_released':
      return { ...base, kind: 'unreserve', reservationId: e.data.reservationId, milestoneId: e.data.milestoneId };
    case 'fee_reserved':
      return {
        kind: 'fee_hold',
        eventId: event.id,
        seq,
        currency: e.data.currency,
        amount: e.data.amount,
        decided: true,
        milestoneId: e.data.milestoneId,
        employerId: '',
        freelancerId: '',
        fee: '0',
        freelancerAmount: '0',
        payerId: userId,
        arbitrationFees: [],
        reservationId: '',
        clearsAt: '',
      };
    case 'funds_cleared':
      return { ...base, kind: 'clear', milestoneId: e.data.milestoneId, causationId: e.data.causationId, covered: true };
  }
}

/**
 * The money a milestone event moves, read by its type from its typed change (renaming a field
 * of a change fails the build here, never posts a fee of 0). Events that move no money: null.
 */
function postingOf(e: MilestoneEmitted): MilestoneMoney | null {
  const none = {
    fee: '0',
    freelancerAmount: '0',
    payerId: '',
    arbitrationFees: [],
    reservationId: '',
    clearsAt: '',
  };
  switch (e.type) {
    case 'created':
    case 'request_accepted':
      return { ...none, kind: 'hold', amount: e.data.amount, fee: e.data.employerFee, reservationId: e.data.reservationId ?? '' };
    case 'reservation_voided':
      return { kind: 'unreserve', amount: e.data.amount, reservationId: e.data.reservationId };
    case 'released':
    case 'partially_released':
      return { ...none, kind: 'release', amount: e.data.amount, fee: e.data.fee, clearsAt: e.data.clearsAt ?? '' };
    case 'cancelled':
      return { ...none, kind: 'return', amount: e.data.amount };
    case 'resolved':
      return {
        kind: 'settle',
        amount: e.data.amount,
        fee: e.data.fee,
        freelancerAmount: e.data.freelancerAmount,
        payerId: '',
        arbitrationFees: arbitrationFeesOf(e.data),
        reservationId: '',
        clearsAt: e.data.clearsAt ?? '',
      };
    case 'escalation_requested':
      // The escalator's account actor reserves the fee on its own subject (fee_reserved); an earlier version asked the ledger here.
      if (e.data.funding === 'account') return null;
      return { ...none, kind: 'fee_hold', amount: e.data.amount, payerId: e.data.escalatorId };
    default:
      return null;
  }
}

/** The arbitration fees a resolution ends: the escalating party's, and the other party's when it paid one too. */
function arbitrationFeesOf(d: Extract<MilestoneEmitted, { type: 'resolved' }>['data']): ArbitrationFeeLeg[] {
  const fees: ArbitrationFeeLeg[] = [];
  if (d.escalatorId !== '' && !isZero(d.arbitrationFee))
    fees.push({ payerId: d.escalatorId, amount: d.arbitrationFee, refunded: d.arbitrationFeeRefunded });
  if (d.secondFeePayerId && d.secondArbitrationFee && !isZero(d.secondArbitrationFee))
    fees.push({ payerId: d.secondFeePayerId, amount: d.secondArbitrationFee, refunded: d.secondArbitrationFeeRefunded === true });
  return fees;
}

export function milestoneStatus(state: EntityState<MilestoneContext>): string {
  return statusOf(state.state);
}

const DECIMAL = /^[0-9]{1,16}(\.[0-9]{1,3})?$/;

function isMilestoneState(s: EntityState<MilestoneContext> | undefined): s is EntityState<MilestoneContext> {
  const c = s?.context;
  return (
    !!c &&
    typeof s.id === 'string' &&
    typeof s.version === 'number' &&
    typeof c.employerId === 'string' &&
    typeof c.freelancerId === 'string' &&
    typeof c.currency === 'string' &&
    [c.amount, c.held, c.released, c.returned].every((a) => typeof a === 'string' && DECIMAL.test(a))
  );
}

function isAccountRequest(d: AccountRequestData | undefined): d is AccountRequestData {
  return (
    !!d &&
    typeof d.userId === 'string' &&
    typeof d.currency === 'string' &&
    typeof d.externalReference === 'string' &&
    typeof d.amount === 'string' &&
    DECIMAL.test(d.amount)
  );
}
