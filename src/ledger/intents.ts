import type { MilestoneContext } from '../../actors/milestone.machine.js';
import { MILESTONE_STATUS, type MilestoneStateName } from '../../actors/milestone.machine.js';
import type { CloudEvent } from '../events/cloudevent.js';
import { eventType } from '../events/cloudevent.js';
import type { EntityEventData, Persisted } from '../runtime/entity.js';
import type { Intent } from './postings.js';
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
const MILESTONE_POSTINGS: Record<string, 'hold' | 'release' | 'return'> = {
  [eventType('milestone', 'created')]: 'hold',
  [eventType('milestone', 'request_accepted')]: 'hold',
  [eventType('milestone', 'released')]: 'release',
  [eventType('milestone', 'partially_released')]: 'release',
  [eventType('milestone', 'cancelled')]: 'return',
};

export interface Classified {
  intent: Intent | null;
  /** The milestone state after the event, for the read model. */
  milestone: Persisted<MilestoneContext> | null;
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
    const amount = String(data.change?.amount ?? '');
    if (amount !== '' && !DECIMAL.test(amount)) return { intent: null, milestone: state };
    const intent: Intent | null =
      kind && amount !== '' && !isZero(amount)
        ? {
            kind,
            eventId: event.id,
            seq,
            milestoneId: state.id,
            employerId: state.context.employerId,
            freelancerId: state.context.freelancerId,
            currency: state.context.currency,
            amount,
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
  return { intent: null, milestone: null };
}

export function milestoneStatus(state: Persisted<MilestoneContext>): string {
  return MILESTONE_STATUS[state.state as MilestoneStateName] ?? 'STATUS_UNSPECIFIED';
}

const DECIMAL = /^[0-9]{1,16}(\.[0-9]{1,3})?$/;

function isMilestoneState(s: Persisted<MilestoneContext> | undefined): s is Persisted<MilestoneContext> {
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
