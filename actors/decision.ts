/**
 * What every machine under actors/ shares: who is asking, how a refusal is described, and
 * the domain event a successful transition emits. Machines are pure: they read these values
 * and write `rejection` or `emitted` into their context; the runtime (src/runtime/) turns the
 * result into an append or an answer.
 */

/** The role that lets a caller resolve disputes. */
export const ARBITER_ROLE = 'arbiter';
/** The role of the payments service: may deposit and read any balance. */
export const PAYMENTS_ROLE = 'payments';
/** A marketplace service: registers projects (AwardProject) on behalf of their employers. */
export const MARKETPLACE_ROLE = 'marketplace';
/** Support staff: may freeze and unfreeze a milestone they are not a party to, and read any milestone. */
export const SUPPORT_ROLE = 'support';
/** The caller id the engine itself uses for saga steps (funding outcomes, timers). */
export const SYSTEM_CALLER = 'system';
/**
 * User ids no person may hold: the engine's own caller and the names of the ledger's own
 * account kinds. No token may act as one and no request may name one as a party or payee,
 * so money is never sent where nobody can reach it. Compared without case.
 */
const RESERVED_USER_IDS: ReadonlySet<string> = new Set([SYSTEM_CALLER, 'world', 'revenue', 'escrow', 'arbitration', 'platform']);
export function isReservedUserId(id: string): boolean {
  return RESERVED_USER_IDS.has(id.toLowerCase());
}

export interface Caller {
  readonly id: string;
  readonly roles: readonly string[];
}

export type RejectionCode = 'PERMISSION_DENIED' | 'FAILED_PRECONDITION' | 'NOT_FOUND' | 'INVALID_ARGUMENT';

export interface Rejection {
  readonly code: RejectionCode;
  /** Stable, machine-readable: clients switch on it. */
  readonly reason: string;
  readonly message: string;
}

/** The domain event a transition produced, before it is wrapped as a CloudEvent. */
export interface Emitted {
  /** Short type, e.g. "released"; the event codec turns it into escrow.milestone.released.v1. */
  readonly type: string;
  readonly data: Readonly<Record<string, string | number | boolean | undefined>>;
}

/** Fields every command event carries: the caller and the injected time. */
export interface CommandBase {
  readonly by: Caller;
  /** ISO 8601 time of the decision, injected so tests control time. */
  readonly at: string;
}

/**
 * The part of a machine's context that carries the outcome of one decision. `E` is the
 * entity's union of events (actors/events.ts), so what a machine emits is checked against
 * the event schemas by the compiler.
 */
export interface DecisionSlots<E extends Emitted = Emitted> {
  rejection: Rejection | null;
  emitted: E | null;
}
