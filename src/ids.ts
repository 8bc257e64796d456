import { createHash } from 'node:crypto';

/**
 * Deterministic ids. A retried command must produce the same event id (the JetStream msgID)
 * and, for CreateMilestone, the same milestone id, so everything here is a hash of what
 * identifies the command, never a random value.
 */

function uuidFromHash(input: string): string {
  const h = createHash('sha256').update(input).digest('hex');
  // Shaped like a version-8 (custom) UUID, so it fits any uuid column or parser.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The id of the event a command on an entity yields: same entity and key, same id. */
export function eventId(entity: string, id: string, idempotencyKey: string): string {
  return uuidFromHash(`event\u0000${entity}\u0000${id}\u0000${idempotencyKey}`);
}

/**
 * Idempotency keys as the actors record them: a client's key is scoped by its caller (user
 * ids hold no ':'); the engine's own saga steps use the `system:` scope. So no client key can
 * collide with another caller's, or with a saga step.
 */
export function scopedKey(callerId: string, key: string): string {
  return `${callerId}:${key}`;
}

/**
 * The milestone an employer's CreateMilestone creates (or a freelancer's RequestMilestone
 * proposes), derived from the caller and the idempotency key.
 */
export function milestoneIdFor(callerId: string, idempotencyKey: string, kind: 'create' | 'request' = 'create'): string {
  return uuidFromHash(`${kind === 'create' ? 'milestone' : 'milestone-request'}\u0000${callerId}\u0000${idempotencyKey}`);
}

/** The event of a deposit or withdrawal, derived from the external reference. */
export function accountEventId(kind: 'deposit' | 'withdrawal', externalReference: string): string {
  return uuidFromHash(`${kind}\u0000${externalReference}`);
}

/** A digest of a request's content (without its idempotency key), to tell repeats from reuse. */
export function digest(content: unknown): string {
  return createHash('sha256').update(stableJson(content)).digest('base64url').slice(0, 22);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The review entity of one reviewer on one project: one review each. */
export function reviewIdFor(projectId: string, reviewerId: string): string {
  return uuidFromHash(`review\u0000${projectId}\u0000${reviewerId}`);
}

/** What an event records of its command's scoped idempotency key: a hash, so no client's key is published. */
export function keyHash(scopedIdempotencyKey: string): string {
  return createHash('sha256').update(`key\u0000${scopedIdempotencyKey}`).digest('base64url').slice(0, 22);
}

/**
 * The reservation that funds a milestone (the id of the account event that makes it): the
 * milestone and what distinguishes the funding command (the create's content, the accept's
 * key), so a retry finds the reservation it made before.
 */
export function reservationIdFor(milestoneId: string, command: string): string {
  return uuidFromHash(`reservation\u0000${milestoneId}\u0000${command}`);
}

/** The account event that reserves the arbitration fee a milestone event `causationId` asks for (an escalation, or the other party's fee). */
export function feeReservationIdFor(causationId: string): string {
  return uuidFromHash(`fee-reservation\u0000${causationId}`);
}

/** The account event that clears a payout (the milestone event `causationId`): one per payout. */
export function clearIdFor(causationId: string): string {
  return uuidFromHash(`clear\u0000${causationId}`);
}

/** The account event that gives an unconsumed reservation back. */
export function reservationReleaseIdFor(reservationId: string): string {
  return uuidFromHash(`reservation-release\u0000${reservationId}`);
}
