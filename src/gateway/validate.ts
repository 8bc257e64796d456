import { isReservedUserId } from '../../actors/decision.js';
import { CANCELLATION_REASONS, MILESTONE_REASONS } from '../../actors/milestone/index.js';
import { InvalidArgument } from '../errors.js';
import { minorUnits, parseAmount, type Money } from '../money.js';

/**
 * Request validation: every field a handler uses goes through one of these. A failure is
 * INVALID_ARGUMENT with a stable reason and the field's name, before anything is changed.
 */

/** User and project ids: they become NATS subject tokens, so no dots, spaces or wildcards. */
export const USER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const MILESTONE_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;
const REFERENCE_PATTERN = /^[\x21-\x7e]{1,128}$/;
const TEXT_MAX = 2_000;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
export const PAGE_SIZE_DEFAULT = 50;
export const PAGE_SIZE_MAX = 200;

function bad(reason: string, field: string, message: string): InvalidArgument {
  return new InvalidArgument(reason, message, { field });
}

export function requireId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw bad('FIELD_REQUIRED', field, `${field} is required`);
  if (!USER_ID_PATTERN.test(value)) throw bad('ID_INVALID', field, `${field} must be 1-64 of A-Z a-z 0-9 _ -`);
  return value;
}

/** A user named as a party or payee (freelancer, employer, reviewee, deposit owner): never a reserved id. */
export function requirePartyId(value: unknown, field: string): string {
  const id = requireId(value, field);
  if (isReservedUserId(id)) throw bad('ID_RESERVED', field, `${field} "${id}" is reserved for the engine`);
  return id;
}

export function requireMilestoneId(value: unknown): string {
  const field = 'milestone_id';
  if (typeof value !== 'string' || value === '') throw bad('FIELD_REQUIRED', field, `${field} is required`);
  if (!MILESTONE_ID_PATTERN.test(value)) throw bad('ID_INVALID', field, `${field} must be a milestone id as returned by CreateMilestone`);
  return value;
}

export function requireKey(value: unknown): string {
  const field = 'idempotency_key';
  if (typeof value !== 'string' || value === '') throw bad('IDEMPOTENCY_KEY_REQUIRED', field, `${field} is required`);
  if (!KEY_PATTERN.test(value)) throw bad('IDEMPOTENCY_KEY_INVALID', field, `${field} must be 1-128 printable ASCII characters`);
  return value;
}

export function requireReference(value: unknown): string {
  const field = 'external_reference';
  if (typeof value !== 'string' || value === '') throw bad('FIELD_REQUIRED', field, `${field} is required`);
  if (!REFERENCE_PATTERN.test(value)) throw bad('REFERENCE_INVALID', field, `${field} must be 1-128 printable ASCII characters`);
  return value;
}

interface MoneyMessage {
  currency_code?: unknown;
  amount?: unknown;
}

/** A Money message as decoded: an object, or absent (null or undefined). */
function moneyMessage(value: unknown): MoneyMessage | null {
  return typeof value === 'object' && value !== null ? value : null;
}

export function requireMoney(input: unknown, field: string, o = { allowZero: false }): Money {
  const value = moneyMessage(input);
  if (!value) throw bad('AMOUNT_REQUIRED', field, `${field} is required`);
  const currency = typeof value.currency_code === 'string' ? value.currency_code : '';
  const amount = typeof value.amount === 'string' ? value.amount : '';
  try {
    return parseAmount(currency, amount, field, o);
  } catch (err) {
    if (err instanceof InvalidArgument) throw bad(err.reason, field, err.message);
    throw err;
  }
}

/**
 * An optional Money field: only an absent message is null ("all", "no expectation"). A message
 * that is present is validated like a required one, so an empty `{currency_code:"", amount:""}`
 * is INVALID_ARGUMENT, never read as "all".
 */
export function optionalMoney(input: unknown, field: string, o = { allowZero: false }): Money | null {
  const value = moneyMessage(input);
  if (value === null) return null;
  if (!value.currency_code && !value.amount)
    throw bad('AMOUNT_EMPTY', field, `${field} is set but empty: leave it unset, or give a currency_code and an amount`);
  return requireMoney(value, field, o);
}

/** Text that must be given (a dispute's reason). */
export function requireText(value: unknown, field: string): string {
  const text = optionalText(value, field);
  if (text.trim() === '') throw bad('FIELD_REQUIRED', field, `${field} is required`);
  return text;
}

/** The review window of auto-release: 0 (off) up to 90 days. */
export const REVIEW_WINDOW_MAX_SECONDS = 90 * 86_400;
export function reviewWindowSeconds(value: unknown): number {
  const n = typeof value === 'number' ? value : 0;
  if (!Number.isInteger(n) || n < 0 || n > REVIEW_WINDOW_MAX_SECONDS) {
    throw bad('REVIEW_WINDOW_INVALID', 'review_window_seconds', `review_window_seconds must be 0..${REVIEW_WINDOW_MAX_SECONDS}`);
  }
  return n;
}

export function optionalText(value: unknown, field: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw bad('TEXT_INVALID', field, `${field} must be a string`);
  if (value.length > TEXT_MAX) throw bad('TEXT_TOO_LONG', field, `${field} is longer than ${TEXT_MAX} characters`);
  // Control characters (NUL above all, which PostgreSQL text cannot hold) are refused; tab, newline and carriage return are text.
  if (CONTROL_CHARS.test(value)) throw bad('TEXT_INVALID', field, `${field} contains control characters`);
  if (LONE_SURROGATE.test(value)) throw bad('TEXT_INVALID', field, `${field} is not well-formed Unicode`);
  return value;
}

export function optionalId(value: unknown, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  return requireId(value, field);
}

export function currencyCode(value: unknown): string {
  const field = 'currency_code';
  if (typeof value !== 'string' || value === '') throw bad('FIELD_REQUIRED', field, `${field} is required`);
  try {
    minorUnits(value);
  } catch (err) {
    if (err instanceof InvalidArgument) throw bad(err.reason, field, err.message);
    throw err;
  }
  return value;
}

export function pageSize(value: unknown): number {
  const n = typeof value === 'number' ? value : 0;
  if (n === 0) return PAGE_SIZE_DEFAULT;
  if (!Number.isInteger(n) || n < 0 || n > PAGE_SIZE_MAX)
    throw bad('PAGE_SIZE_INVALID', 'page_size', `page_size must be 1..${PAGE_SIZE_MAX}`);
  return n;
}

/** A CancellationReason name; '' when unset and not required. */
/** The optional MilestoneReason of a create or a request: '' when unset. */
export function milestoneReason(value: unknown): string {
  const field = 'milestone_reason';
  if (value === undefined || value === null || value === '' || value === 'MILESTONE_REASON_UNSPECIFIED' || value === 0) return '';
  if (typeof value !== 'string' || !MILESTONE_REASONS.has(value))
    throw bad('REASON_CODE_INVALID', field, `${field} must be one of ${[...MILESTONE_REASONS].join(', ')}`);
  return value;
}

export function cancellationReason(value: unknown, o: { required: boolean }): string {
  const field = 'reason_code';
  if (value === undefined || value === null || value === '' || value === 'CANCELLATION_REASON_UNSPECIFIED' || value === 0) {
    if (o.required) throw bad('REASON_CODE_REQUIRED', field, `${field} is required: one of ${[...CANCELLATION_REASONS].join(', ')}`);
    return '';
  }
  if (typeof value !== 'string' || !CANCELLATION_REASONS.has(value))
    throw bad('REASON_CODE_INVALID', field, `${field} must be one of ${[...CANCELLATION_REASONS].join(', ')}`);
  return value;
}

const SORTS: Record<string, { column: 'created_at' | 'updated_at'; descending: boolean }> = {
  MILESTONE_SORT_UNSPECIFIED: { column: 'created_at', descending: true },
  MILESTONE_SORT_CREATED_DESC: { column: 'created_at', descending: true },
  MILESTONE_SORT_CREATED_ASC: { column: 'created_at', descending: false },
  MILESTONE_SORT_UPDATED_DESC: { column: 'updated_at', descending: true },
  MILESTONE_SORT_UPDATED_ASC: { column: 'updated_at', descending: false },
};

/** ListMilestones' order; unset is newest created first. */
export function milestoneSort(value: unknown): { column: 'created_at' | 'updated_at'; descending: boolean } {
  if (value === undefined || value === null || value === '' || value === 0) return { column: 'created_at', descending: true };
  const sort = typeof value === 'string' ? SORTS[value] : undefined;
  if (!sort) throw bad('SORT_INVALID', 'sort', `sort must be one of ${Object.keys(SORTS).join(', ')}`);
  return sort;
}

/** An optional google.protobuf.Timestamp as an ISO time; null when unset. */
function optionalTimestamp(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  const t = value as { seconds?: unknown; nanos?: unknown };
  const seconds = typeof t.seconds === 'string' || typeof t.seconds === 'number' ? Number(t.seconds) : NaN;
  const nanos = t.nanos === undefined ? 0 : Number(t.nanos);
  // Years 1..9999, as the Timestamp type allows; the database and the page tokens hold them.
  if (
    !Number.isInteger(seconds) ||
    !Number.isInteger(nanos) ||
    nanos < 0 ||
    nanos > 999_999_999 ||
    seconds < -62_135_596_800 ||
    seconds > 253_402_300_799
  )
    throw bad('TIME_INVALID', field, `${field} is not a valid timestamp`);
  return new Date(seconds * 1000 + Math.floor(nanos / 1_000_000)).toISOString();
}

/** A half-open time range of a list filter, `<prefix>_from` <= t < `<prefix>_before`; each bound optional. */
export function timeRange(from: unknown, before: unknown, prefix: string): { from: string | null; before: string | null } {
  const range = { from: optionalTimestamp(from, `${prefix}_from`), before: optionalTimestamp(before, `${prefix}_before`) };
  if (range.from !== null && range.before !== null && Date.parse(range.from) >= Date.parse(range.before))
    throw bad('TIME_RANGE_INVALID', `${prefix}_before`, `${prefix}_before must be after ${prefix}_from`);
  return range;
}

const URI = /^([a-zA-Z][a-zA-Z0-9+.-]*):\S+$/;
/** Where evidence may be: schemes an arbiter's console can open safely (no javascript:, data: and the like). */
const EVIDENCE_SCHEMES = new Set(['https', 's3', 'gs', 'ipfs']);

/** An evidence reference: an absolute URI (at most 1024, no spaces), a SHA-256 in hex (lowercased), an optional note (at most 500). */
export function evidence(r: { uri: unknown; sha256: unknown; note: unknown }): { uri: string; sha256: string; note: string } {
  if (typeof r.uri !== 'string' || r.uri === '') throw bad('FIELD_REQUIRED', 'uri', 'uri is required');
  if (r.uri.length > 1024) throw bad('TEXT_TOO_LONG', 'uri', 'uri is longer than 1024 characters');
  const scheme = URI.exec(r.uri)?.[1]?.toLowerCase();
  if (!scheme || !EVIDENCE_SCHEMES.has(scheme) || CONTROL_CHARS.test(r.uri) || LONE_SURROGATE.test(r.uri))
    throw bad('URI_INVALID', 'uri', `uri must be an absolute URI without spaces, of ${[...EVIDENCE_SCHEMES].join(', ')}`);
  if (typeof r.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(r.sha256))
    throw bad('SHA256_INVALID', 'sha256', 'sha256 must be 64 hex digits');
  const note = optionalText(r.note, 'note');
  if (note.length > 500) throw bad('TEXT_TOO_LONG', 'note', 'note is longer than 500 characters');
  return { uri: r.uri, sha256: r.sha256.toLowerCase(), note };
}
