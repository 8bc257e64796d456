import type { FromSchema } from 'json-schema-to-ts';

/**
 * What each event says changed (`data.change` of escrow.<entity>.<type>.v1), one JSON Schema
 * per event type and entity: the machines emit exactly these (the compiler checks them
 * against the types derived here), the ledger reads them by type, consumers validate with
 * them, and a test validates every event the integration tests produce.
 */

const amount = { type: 'string', pattern: '^(0|[1-9][0-9]*)(\\.[0-9]+)?$' } as const;
const id = { type: 'string', minLength: 1, maxLength: 200 } as const;
const text = { type: 'string', maxLength: 2000 } as const;
const time = { type: 'string', minLength: 20, maxLength: 40 } as const;

function change<const P extends Record<string, unknown>, const R extends readonly (keyof P & string)[]>(properties: P, required: R) {
  return { type: 'object', properties, required, additionalProperties: false } as const;
}

export const MILESTONE_CHANGES = {
  // With reservationId (this version on): funded from that reservation of the employer's account. Without: by an earlier version, held by the ledger on this event.
  created: change({ amount, employerFee: amount, reservationId: id }, ['amount', 'employerFee']),
  requested: change({ amount }, ['amount']),
  request_accepted: change({ amount, employerFee: amount, reservationId: id }, ['amount', 'employerFee']),
  request_rejected: change({}, []),
  request_withdrawn: change({}, []),
  funded: change({ amount, employerFee: amount }, ['amount', 'employerFee']),
  funding_failed: change({ reason: id }, ['reason']),
  // A reservation (amount = what it holds) whose milestone never appeared, released back to the employer.
  reservation_voided: change({ reservationId: id, amount, reason: id }, ['reservationId', 'amount', 'reason']),
  release_requested: change({ autoReleaseAt: time }, []),
  // The employer corrected the description; the history keeps the previous one.
  description_updated: change({ description: text, previous: text }, ['description', 'previous']),
  // The employer asked for changes: back to FUNDED, the review window stopped (the next release request starts it again).
  changes_requested: change({ reason: text }, ['reason']),
  // clearsAt (with a clearing period): what the freelancer got is pending until then.
  released: change({ amount, held: amount, fee: amount, automatic: { type: 'boolean' }, clearsAt: time }, ['amount', 'held', 'fee']),
  partially_released: change({ amount, held: amount, fee: amount, clearsAt: time }, ['amount', 'held', 'fee']),
  cancellation_requested: change({ reasonCode: { type: 'string' }, reason: text }, ['reasonCode', 'reason']),
  cancellation_rejected: change({ resumed: { type: 'string' } }, ['resumed']),
  cancelled: change({ amount, reasonCode: { type: 'string' }, reason: text }, ['amount', 'reasonCode', 'reason']),
  dispute_opened: change({ reason: text, claimedAmount: amount, respondentId: id, respondBy: time }, [
    'reason',
    'claimedAmount',
    'respondentId',
    'respondBy',
  ]),
  settlement_proposed: change({ freelancerAmount: amount, employerAmount: amount }, ['freelancerAmount', 'employerAmount']),
  // With funding 'account' the escalator's account actor decides the fee; without, the ledger held it on this event (an earlier version).
  escalation_requested: change({ amount, escalatorId: id, funding: { const: 'account' } }, ['amount', 'escalatorId']),
  // In arbitration. Under terms that ask both parties, the other party's fee is named too (secondFeePayerId, secondArbitrationFee).
  escalated: change({ escalatorId: id, arbitrationFee: amount, secondFeePayerId: id, secondArbitrationFee: amount }, [
    'escalatorId',
    'arbitrationFee',
  ]),
  escalation_failed: change({ reason: id }, ['reason']),
  // Terms that ask both parties: the escalating party's fee is held; the other party (payerId) must pay its own by payBy, or lose by default.
  arbitration_fee_due: change({ escalatorId: id, arbitrationFee: amount, payerId: id, payBy: time }, [
    'escalatorId',
    'arbitrationFee',
    'payerId',
    'payBy',
  ]),
  // The other party's account actor reserves its fee (fee_reserved), or refuses: escalated or arbitration_fee_failed follows.
  arbitration_fee_requested: change({ amount, payerId: id, funding: { const: 'account' } }, ['amount', 'payerId', 'funding']),
  arbitration_fee_failed: change({ reason: id }, ['reason']),
  // A party attached a reference to evidence (the file stays with the marketplace).
  evidence_attached: change(
    { uri: { type: 'string', minLength: 1, maxLength: 1024 }, sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' }, note: text },
    ['uri', 'sha256', 'note'],
  ),
  // The filer withdrew the dispute: back to `resumed` (a status), the money still held; a review window it stopped runs again until autoReleaseAt.
  dispute_withdrawn: change({ resumed: { type: 'string' }, autoReleaseAt: time }, ['resumed']),
  // Support staff froze the milestone (from `previousStatus`) or let it go (back to `resumed`; a timer it stopped runs again until dueAt).
  frozen: change({ reason: text, previousStatus: { type: 'string' } }, ['reason', 'previousStatus']),
  unfrozen: change({ reason: text, resumed: { type: 'string' }, dueAt: time }, ['reason', 'resumed']),
  resolved: change(
    {
      amount,
      freelancerAmount: amount,
      employerAmount: amount,
      fee: amount,
      outcome: { enum: ['settled', 'claim_granted', 'claim_accepted', 'arbitrated', 'fee_unpaid'] },
      arbitrationFee: amount,
      escalatorId: { type: 'string' },
      arbitrationFeeRefunded: { type: 'boolean' },
      // The other party's arbitration fee, when it paid one (terms that ask both): back to it if it won, else to the platform.
      secondFeePayerId: id,
      secondArbitrationFee: amount,
      secondArbitrationFeeRefunded: { type: 'boolean' },
      clearsAt: time,
    },
    ['amount', 'freelancerAmount', 'employerAmount', 'fee', 'outcome', 'arbitrationFee', 'escalatorId', 'arbitrationFeeRefunded'],
  ),
} as const;

export const PROJECT_CHANGES = {
  registered: change({ employerId: id, freelancerId: id }, ['employerId', 'freelancerId']),
  award_accepted: change({}, []),
} as const;

export const REVIEW_CHANGES = {
  submitted: change({ projectId: id, revieweeId: id, rating: { type: 'integer', minimum: 1, maximum: 5 } }, [
    'projectId',
    'revieweeId',
    'rating',
  ]),
} as const;

const currency = { type: 'string', pattern: '^[A-Z]{3}$' } as const;

/**
 * The events of a user's account actor (subject <ns>.account.<user>): every debit of the
 * user's available balance is decided here (a reservation funding a milestone, an arbitration
 * fee, a withdrawal), and credits the actor takes part in (deposits, released reservations).
 */
export const ACCOUNT_CHANGES = {
  deposit_requested: change({ currency, amount, externalReference: text }, ['currency', 'amount', 'externalReference']),
  withdrawal_requested: change({ currency, amount, externalReference: text }, ['currency', 'amount', 'externalReference']),
  // amount: what is taken from available, the milestone amount plus the employer fee (fee).
  funds_reserved: change({ currency, amount, fee: amount, milestoneId: id, projectId: id, freelancerId: id }, [
    'currency',
    'amount',
    'fee',
    'milestoneId',
    'projectId',
    'freelancerId',
  ]),
  // The arbitration fee of the escalation `causationId` (the milestone event that asked for it).
  fee_reserved: change({ currency, amount, milestoneId: id, causationId: id }, ['currency', 'amount', 'milestoneId', 'causationId']),
  // The account could not pay that fee: recorded under the reservation's event id, so every gateway deciding the escalation agrees.
  fee_refused: change({ currency, amount, milestoneId: id, causationId: id }, ['currency', 'amount', 'milestoneId', 'causationId']),
  // A payout to the user (the milestone event causationId) cleared: from pending to available, at its clearing time.
  funds_cleared: change({ currency, amount, milestoneId: id, causationId: id }, ['currency', 'amount', 'milestoneId', 'causationId']),
  // A reservation no milestone will consume, given back to available.
  reservation_released: change({ currency, amount, milestoneId: id, reservationId: id }, [
    'currency',
    'amount',
    'milestoneId',
    'reservationId',
  ]),
} as const;

/** The schemas by entity, as the subjects and CloudEvents types name them. */
export const CHANGE_SCHEMAS = {
  milestone: MILESTONE_CHANGES,
  project: PROJECT_CHANGES,
  review: REVIEW_CHANGES,
  account: ACCOUNT_CHANGES,
} as const;

type Changes<S extends Record<string, unknown>> = { [K in keyof S & string]: FromSchema<S[K] & object> };
/** One emitted event of an entity: its short type and what changed, a discriminated union. */
type EmittedOf<S extends Record<string, unknown>> = { [K in keyof S & string]: { type: K; data: Changes<S>[K] } }[keyof S & string];

export type MilestoneChanges = Changes<typeof MILESTONE_CHANGES>;
export type MilestoneEmitted = EmittedOf<typeof MILESTONE_CHANGES>;
export type ProjectEmitted = EmittedOf<typeof PROJECT_CHANGES>;
export type ReviewEmitted = EmittedOf<typeof REVIEW_CHANGES>;
export type AccountEmitted = EmittedOf<typeof ACCOUNT_CHANGES>;
export type AccountEventType = keyof typeof ACCOUNT_CHANGES;
export type MilestoneEventType = keyof typeof MILESTONE_CHANGES;
