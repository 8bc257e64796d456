import type { ErrorCode } from './errors.js';

/**
 * Every stable reason the API answers with: its gRPC code and what it means, one line each.
 * Callers branch on reasons, so this is the list they can rely on. docs/api.md's table is
 * written from it (npm run docs:reasons) and src/reasons.unit.test.ts holds the code to it:
 * every reason the code answers with is here, with the code it is answered with.
 */
export interface ReasonInfo {
  code: ErrorCode;
  meaning: string;
  /** The one reason answered with a second code, and when. */
  alsoAs?: { code: ErrorCode; when: string };
}

export const REASONS = {
  // Input (INVALID_ARGUMENT): nothing changed; fix the request.
  AMOUNT_REQUIRED: { code: 'INVALID_ARGUMENT', meaning: 'a Money field that must be given is missing' },
  AMOUNT_EMPTY: { code: 'INVALID_ARGUMENT', meaning: 'an optional Money field is set but empty: leave it unset, or fill both parts' },
  AMOUNT_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'the amount is not a plain decimal string' },
  AMOUNT_SCALE: { code: 'INVALID_ARGUMENT', meaning: "the amount has more decimals than the currency's minor unit" },
  AMOUNT_NOT_POSITIVE: { code: 'INVALID_ARGUMENT', meaning: 'the amount is zero or negative' },
  AMOUNT_TOO_LARGE: { code: 'INVALID_ARGUMENT', meaning: 'the amount is above 10^12' },
  CURRENCY_UNKNOWN: { code: 'INVALID_ARGUMENT', meaning: 'the currency code is not one the engine knows' },
  CURRENCY_MISMATCH: { code: 'INVALID_ARGUMENT', meaning: "the amount is not in the milestone's currency" },
  FIELD_REQUIRED: { code: 'INVALID_ARGUMENT', meaning: 'a required field is missing or empty (ErrorInfo `field` names it)' },
  ID_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'an id is not of its form (users: 1-64 of A-Z a-z 0-9 _ -; milestones: as returned)' },
  ID_RESERVED: { code: 'INVALID_ARGUMENT', meaning: 'a user id is one the engine keeps for itself (e.g. "system")' },
  IDEMPOTENCY_KEY_REQUIRED: { code: 'INVALID_ARGUMENT', meaning: 'a changing call came without its idempotency_key' },
  IDEMPOTENCY_KEY_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'the idempotency_key is not 1-128 printable ASCII characters' },
  IDEMPOTENCY_KEY_REUSED: { code: 'INVALID_ARGUMENT', meaning: 'the idempotency_key was used before for a different request' },
  EXTERNAL_REFERENCE_REUSED: {
    code: 'INVALID_ARGUMENT',
    meaning: 'the external_reference was used before for a different deposit or withdrawal',
  },
  REFERENCE_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'the external_reference is not 1-128 printable ASCII characters' },
  TEXT_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'a text is not a string, holds control characters or is not well-formed Unicode' },
  TEXT_TOO_LONG: { code: 'INVALID_ARGUMENT', meaning: 'a text is longer than its limit' },
  PAGE_TOKEN_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'the page_token is not one this service issued for this query' },
  PAGE_SIZE_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'the page_size is outside its range' },
  DIRECTION_REQUIRED: { code: 'INVALID_ARGUMENT', meaning: 'ListMilestones needs direction INCOMING or OUTGOING' },
  STATUS_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'an unknown status in a list filter' },
  SORT_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'the sort is not one of MilestoneSort' },
  TIME_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'a timestamp of a list filter is not a valid time (years 1..9999)' },
  TIME_RANGE_INVALID: { code: 'INVALID_ARGUMENT', meaning: "a time range's end is not after its start" },
  STAGE_INVALID: {
    code: 'INVALID_ARGUMENT',
    meaning: 'ListDisputes: the stage is not NEGOTIATION, ESCALATING, AWAITING_FEE or ARBITRATION',
  },
  URI_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'an evidence uri is not an absolute https, s3, gs or ipfs URI without spaces' },
  SHA256_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'an evidence sha256 is not 64 hex digits' },
  SELF_AWARD: { code: 'INVALID_ARGUMENT', meaning: 'an employer cannot award its project to itself' },
  REVIEW_WINDOW_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'review_window_seconds is outside its range' },
  REASON_CODE_REQUIRED: { code: 'INVALID_ARGUMENT', meaning: 'a cancellation request needs a reason_code' },
  REASON_CODE_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'a reason code is not one of its enum (CancellationReason, MilestoneReason)' },
  RATING_INVALID: { code: 'INVALID_ARGUMENT', meaning: 'a rating must be 1..5' },
  REVIEWEE_NOT_COUNTERPART: { code: 'INVALID_ARGUMENT', meaning: "a party reviews the project's other party, no one else" },

  // Not legal now (FAILED_PRECONDITION): the state of the milestone, project or balance refuses it.
  ILLEGAL_IN_STATUS: { code: 'FAILED_PRECONDITION', meaning: "the command is not allowed in the milestone's current status" },
  AMOUNT_EXCEEDS_HELD: { code: 'FAILED_PRECONDITION', meaning: 'a release or a split is above what the milestone still holds' },
  INSUFFICIENT_FUNDS: { code: 'FAILED_PRECONDITION', meaning: 'the available balance is below what the call needs' },
  RESERVATION_EXPIRED: { code: 'FAILED_PRECONDITION', meaning: 'a funding reservation was given back before its milestone appeared' },
  RESERVATION_MISMATCH: { code: 'FAILED_PRECONDITION', meaning: 'the reservation does not cover the amount and the employer fee' },
  AWARD_ALREADY_ACCEPTED: { code: 'FAILED_PRECONDITION', meaning: 'the award was accepted already' },
  FREELANCER_NOT_AWARDED: { code: 'FAILED_PRECONDITION', meaning: 'the project is awarded to another freelancer' },
  MILESTONE_FROZEN: {
    code: 'FAILED_PRECONDITION',
    meaning: 'support staff froze the milestone: nothing but UnfreezeMilestone is accepted',
  },
  EVIDENCE_LIMIT: { code: 'FAILED_PRECONDITION', meaning: 'the party attached as many evidence references to this dispute as it may (5)' },
  DISPUTE_LIMIT: { code: 'FAILED_PRECONDITION', meaning: 'the milestone had as many disputes as it may have (3)' },
  EVENT_LIMIT: { code: 'FAILED_PRECONDITION', meaning: 'the milestone has as many events as it may have (a final step is still allowed)' },
  EVENT_BYTES_LIMIT: {
    code: 'FAILED_PRECONDITION',
    meaning: 'the milestone has as many event bytes as it may have (a final step is still allowed)',
  },
  CLAIM_EXCEEDS_HELD: { code: 'FAILED_PRECONDITION', meaning: 'a dispute claims more than the milestone holds' },
  NO_PROPOSAL: { code: 'FAILED_PRECONDITION', meaning: 'no settlement has been proposed' },
  OWN_PROPOSAL: { code: 'FAILED_PRECONDITION', meaning: 'the other party accepts a proposal, not its proposer' },
  PROPOSAL_CHANGED: { code: 'FAILED_PRECONDITION', meaning: 'the standing proposal is not the one the caller expected' },
  NEGOTIATION_WINDOW_OPEN: { code: 'FAILED_PRECONDITION', meaning: 'escalation is possible only after the negotiation window' },
  NOT_DUE: { code: 'FAILED_PRECONDITION', meaning: 'no timer of this milestone is due' },
  PROPOSAL_LIMIT: { code: 'FAILED_PRECONDITION', meaning: 'a party made as many proposals in this dispute as it may' },
  ESCALATION_LIMIT: { code: 'FAILED_PRECONDITION', meaning: 'a party made as many escalation attempts in this dispute as it may' },
  RESPONSE_DEADLINE_PASSED: { code: 'FAILED_PRECONDITION', meaning: 'the respondent did not answer in time: the claim is being granted' },
  FEE_DEADLINE_PASSED: {
    code: 'FAILED_PRECONDITION',
    meaning: 'the other party did not pay its arbitration fee in time: the escalating party wins by default',
  },
  FEE_ATTEMPT_LIMIT: {
    code: 'FAILED_PRECONDITION',
    meaning: 'the other party made as many attempts to pay its arbitration fee as it may (3, apart from escalation attempts)',
  },
  FEE_ALREADY_PAID: {
    code: 'FAILED_PRECONDITION',
    meaning: "PayArbitrationFee by the escalating party, which paid its fee: the other party's is due",
  },
  REVIEW_WINDOW_PASSED: { code: 'FAILED_PRECONDITION', meaning: 'the review window ended: what is held is being released' },
  NOTHING_RELEASED: { code: 'FAILED_PRECONDITION', meaning: 'a review needs money released on the project first' },
  ALREADY_REVIEWED: { code: 'FAILED_PRECONDITION', meaning: 'the caller reviewed this project already' },

  // Not found.
  MILESTONE_NOT_FOUND: { code: 'NOT_FOUND', meaning: 'no such milestone' },
  PROJECT_NOT_FOUND: { code: 'NOT_FOUND', meaning: 'no such project' },

  // Not this caller's to do (PERMISSION_DENIED): authenticated, but the wrong party or role.
  NOT_EMPLOYER: { code: 'PERMISSION_DENIED', meaning: "only the milestone's employer may do this" },
  NOT_FREELANCER: { code: 'PERMISSION_DENIED', meaning: "only the milestone's (or project's) freelancer may do this" },
  NOT_PARTY: { code: 'PERMISSION_DENIED', meaning: 'the caller is not a party of the milestone or project' },
  NOT_OWNER: { code: 'PERMISSION_DENIED', meaning: "the caller may not read another user's balance or ledger" },
  NOT_PROJECT_EMPLOYER: {
    code: 'PERMISSION_DENIED',
    meaning: 'the caller is not the employer of the project',
    alsoAs: { code: 'FAILED_PRECONDITION', when: "a milestone request names an employer_id that is not the project's" },
  },
  AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL: {
    code: 'PERMISSION_DENIED',
    meaning: 'once the award is accepted only the freelancer may cancel',
  },
  PAYMENTS_ROLE_REQUIRED: { code: 'PERMISSION_DENIED', meaning: 'deposits need the payments role' },
  MARKETPLACE_ROLE_REQUIRED: { code: 'PERMISSION_DENIED', meaning: 'awarding a project for another employer needs the marketplace role' },
  SYSTEM_ONLY: { code: 'PERMISSION_DENIED', meaning: 'a step only the engine itself may take (e.g. voiding a reservation)' },
  NOT_FILER: { code: 'PERMISSION_DENIED', meaning: 'only the party that opened the dispute may withdraw it' },
  NOT_RESPONDENT: { code: 'PERMISSION_DENIED', meaning: 'only the party a dispute was opened against may accept its claim' },
  NOT_SUPPORT: { code: 'PERMISSION_DENIED', meaning: 'freezing and unfreezing a milestone needs the support role' },
  SUPPORT_IS_PARTY: { code: 'PERMISSION_DENIED', meaning: 'support staff do not freeze a milestone they are a party to' },
  NOT_ARBITER: { code: 'PERMISSION_DENIED', meaning: 'resolving a dispute needs the arbiter role' },
  ARBITER_IS_PARTY: { code: 'PERMISSION_DENIED', meaning: 'an arbiter may not decide a dispute of its own milestone' },

  // Who is calling (UNAUTHENTICATED).
  TOKEN_MISSING: { code: 'UNAUTHENTICATED', meaning: 'no authorization metadata' },
  TOKEN_MALFORMED: { code: 'UNAUTHENTICATED', meaning: 'authorization is not "Bearer <JWT>"' },
  TOKEN_INVALID: { code: 'UNAUTHENTICATED', meaning: 'the token does not verify (forged, or not a JWT)' },
  TOKEN_EXPIRED: { code: 'UNAUTHENTICATED', meaning: 'the token is past its exp' },
  TOKEN_EXPIRY_REQUIRED: { code: 'UNAUTHENTICATED', meaning: 'the token has no exp' },
  TOKEN_LIFETIME_TOO_LONG: { code: 'UNAUTHENTICATED', meaning: "the token's exp is further ahead than tokens may live" },
  TOKEN_ISSUED_IN_FUTURE: { code: 'UNAUTHENTICATED', meaning: "the token's iat is in the future" },
  TOKEN_SUBJECT_INVALID: { code: 'UNAUTHENTICATED', meaning: 'the token has no valid sub (or a reserved one)' },
  TOKEN_ISSUER_INVALID: { code: 'UNAUTHENTICATED', meaning: 'the token is not from the configured issuer' },
  TOKEN_AUDIENCE_INVALID: { code: 'UNAUTHENTICATED', meaning: 'the token is not for the configured audience' },
  TOKEN_KEY_UNKNOWN: { code: 'UNAUTHENTICATED', meaning: "the token's key id is not in the key set" },
  TOKEN_ALGORITHM_REFUSED: { code: 'UNAUTHENTICATED', meaning: "the token's algorithm is not one the engine accepts" },

  // Try again later.
  CALLER_BUSY: { code: 'RESOURCE_EXHAUSTED', meaning: 'this caller has too many calls in progress (retry_after_ms)' },
  RATE_LIMITED: { code: 'RESOURCE_EXHAUSTED', meaning: 'this caller is over its rate (retry_after_ms)' },
  WATCH_LIMIT: { code: 'RESOURCE_EXHAUSTED', meaning: 'this caller has as many WatchMilestone streams as it may' },
  GATEWAY_BUSY: { code: 'RESOURCE_EXHAUSTED', meaning: 'the gateway has too many calls in progress (retry_after_ms)' },
  MAILBOX_FULL: { code: 'RESOURCE_EXHAUSTED', meaning: 'too many commands queued for one milestone or account' },
  CONCURRENT_MODIFICATION: { code: 'ABORTED', meaning: 'lost the optimistic race repeatedly: retry with the same key' },
  EVENT_LOG_UNAVAILABLE: { code: 'UNAVAILABLE', meaning: 'NATS is unreachable' },
  EVENT_LOG_UNSAFE: {
    code: 'UNAVAILABLE',
    meaning: 'the event log cannot be trusted with conditional appends now (a cluster peer is too old, or unchecked)',
  },
  EVENT_LOG_FULL: { code: 'UNAVAILABLE', meaning: 'the stream is at its byte limit: nothing is discarded, new commands wait' },
  DATABASE_UNAVAILABLE: { code: 'UNAVAILABLE', meaning: 'PostgreSQL is unreachable' },
  JWKS_UNAVAILABLE: { code: 'UNAVAILABLE', meaning: 'the key set cannot be fetched now' },
  DEADLINE_EXCEEDED: { code: 'DEADLINE_EXCEEDED', meaning: "the call's deadline passed before its command was started" },

  // The engine's own fault.
  EVENT_UNVERIFIED: { code: 'INTERNAL', meaning: "a message on the engine's subjects is not signed by this deployment" },
  INTERNAL: { code: 'INTERNAL', meaning: 'an unexpected error (logged with the request id)' },
} as const satisfies Record<string, ReasonInfo>;

export type Reason = keyof typeof REASONS;

/** docs/api.md's table of reasons, as `npm run docs:reasons` writes it. */
export function reasonsTable(): string {
  const rows = Object.entries(REASONS as Record<string, ReasonInfo>).map(([reason, r]) => {
    const also = r.alsoAs ? `; ${r.alsoAs.code} when ${r.alsoAs.when}` : '';
    return `| \`${reason}\` | ${r.code} | ${r.meaning}${also} |`;
  });
  return ['| reason | code | meaning |', '|---|---|---|', ...rows].join('\n');
}
