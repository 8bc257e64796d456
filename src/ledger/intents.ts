import type { MilestoneContext } from '../../actors/milestone.machine.js';
import { MILESTONE_STATUS, type MilestoneStateName } from '../../actors/milestone.machine.js';
import type { CloudEvent } from '../events/cloudevent.js';
import { eventType } from '../events/cloudevent.js';
import type { EntityEventData, EntityState } from '../runtime/entity.js';
import type { Intent, MilestoneIntent } from './postings.js';
import { isZero } from '../money.js';

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

/** Milestone event types that move money, and the posting kind each one makes. */
const MILESTONE_POSTINGS: Record<string, MilestoneIntent['kind']> = {
  [eventType('milestone', 'created')]: 'hold',
  [eventType('milestone', 'request_accepted')]: 'hold',
  [eventType('milestone', 'released')]: 'release',
  [eventType('milestone', 'partially_released')]: 'release',
  [eventType('milestone', 'cancelled')]: 'return',
  [eventType('milestone', 'resolved')]: 'settle',
  [eventType('milestone', 'escalation_requested')]: 'fee_hold',
};

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
  /** The milestone state after the event, for the read model. */
  milestone: EntityState<MilestoneContext> | null;
  review?: ReviewRow;
}

/** What one event of the stream means to the ledger. Events it has no use for classify as empty. */
export function classify(seq: number, event: CloudEvent): Classified {
  // Only the gateways publish here; anything that does not have their shape (a message put
  // on the subjects by hand) is not a money event and is left alone.
  if (event.type.startsWith('escrow.milestone.')) {
    const data = event.data as unknown as EntityEventData<MilestoneContext>;
    const state = data?.state;
    if (!isMilestoneState(state)) return { intent: null, milestone: null };
    const kind = MILESTONE_POSTINGS[event.type];
    const change = data.change ?? {};
    const amounts = ['amount', 'employerFee', 'fee', 'freelancerAmount', 'arbitrationFee'].map((k) => String(change[k] ?? '0'));
    if (amounts.some((a) => !DECIMAL.test(a))) return { intent: null, milestone: state };
    const [amount, employerFee, fee, freelancerAmount, arbitrationFee] = amounts as [string, string, string, string, string];
    const intent: Intent | null =
      kind && !isZero(amount)
        ? {
            kind,
            eventId: event.id,
            seq,
            milestoneId: state.id,
            employerId: state.context.employerId,
            freelancerId: state.context.freelancerId,
            currency: state.context.currency,
            amount,
            fee: kind === 'hold' ? employerFee : fee,
            freelancerAmount,
            payerId: typeof change.escalatorId === 'string' ? change.escalatorId : '',
            arbitrationFee,
            arbitrationFeeRefunded: change.arbitrationFeeRefunded === true,
          }
        : null;
    return { intent, milestone: state };
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
    const r = (event.data as unknown as EntityEventData<{ projectId: string; reviewerId: string; revieweeId: string; rating: number; comment: string }>)?.state?.context;
    if (!r || typeof r.projectId !== 'string' || typeof r.reviewerId !== 'string' || typeof r.revieweeId !== 'string' || typeof r.comment !== 'string') {
      return { intent: null, milestone: null };
    }
    if (!Number.isInteger(r.rating) || r.rating < 1 || r.rating > 5) return { intent: null, milestone: null };
    return {
      intent: null,
      milestone: null,
      review: { eventId: event.id, projectId: r.projectId, reviewerId: r.reviewerId, revieweeId: r.revieweeId, rating: r.rating, comment: r.comment.replace(/\u0000/g, ''), at: event.time },
    };
  }
  return { intent: null, milestone: null };
}

export function milestoneStatus(state: EntityState<MilestoneContext>): string {
  return MILESTONE_STATUS[state.state as MilestoneStateName] ?? 'STATUS_UNSPECIFIED';
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
