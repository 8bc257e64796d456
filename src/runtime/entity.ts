import type { AnyStateMachine, EventObject } from 'xstate';
import type { Caller, DecisionSlots, Emitted } from '../../actors/decision.js';
import type { Position } from '../../actors/decide.js';
import { keyHash } from '../ids.js';

/** One entry of an entity's history, as GetMilestone shows it. */
export interface HistoryEntry {
  version: number;
  /** Short event type, e.g. "released". */
  type: string;
  by: string;
  at: string;
  data: Emitted['data'];
}

/** The decision state of an entity after an event: what every event carries, and all an actor needs to decide. */
export interface EntityState<C> {
  id: string;
  /** Machine state name. */
  state: string;
  context: C;
  /** Number of events applied. */
  version: number;
}

/**
 * An entity as its actor holds it: the decision state, and what the actor rebuilds from the
 * subject's events when it loads (events carry only their own change and key, so they stay
 * small however long the history grows).
 */
export interface Persisted<C> extends EntityState<C> {
  /**
   * Idempotency keys applied (hashed, see keyHash), with the digest of the request, so a
   * repeat hours later gets the first answer. Read with appliedKey().
   */
  applied: Record<string, { digest: string; version: number }>;
  history: HistoryEntry[];
  /** The id of the last event (its CloudEvents id and JetStream msgID); '' before the first. */
  lastEventId: string;
  /** Bytes of all the entity's events on the log, so far. */
  bytes: number;
}

/** What the data of an entity event holds: who made the change, the change, its command, and the decision state after it. */
export interface EntityEventData<C> {
  by: string;
  version: number;
  /** keyHash of the command's scoped idempotency key, and the digest of its content. */
  key: string;
  digest: string;
  change: Emitted['data'];
  state: EntityState<C>;
}

/** The record of a scoped idempotency key on an entity, if a command with it was applied. */
export function appliedKey<C>(state: Persisted<C>, scopedIdempotencyKey: string): { digest: string; version: number } | undefined {
  return state.applied[keyHash(scopedIdempotencyKey)];
}

/** A command for one entity, ready for its actor. */
export interface Command<E extends EventObject = EventObject & { by: Caller; at: string }> {
  readonly key: string;
  readonly digest: string;
  readonly event: E;
  /** Epoch ms after which the command is not started (the caller's gRPC deadline). */
  readonly deadline?: number;
}

/** How the runtime handles one kind of entity: its machine and where its events live. */
export interface EntityKind<C extends DecisionSlots> {
  /** "milestone" or "project": the subject segment and the CloudEvents type segment. */
  readonly entity: string;
  readonly machine: AnyStateMachine;
  readonly initial: Position<C>;
  /** States after which nothing can happen: a transition into one is allowed even at the event limit. */
  readonly finalStates: ReadonlySet<string>;
  /**
   * States whose events the machine bounds itself (a dispute: capped proposals and escalation
   * attempts, one dispute per milestone): transitions into them are allowed past the limit too,
   * so money held in them can always reach a final state.
   */
  readonly boundedStates?: ReadonlySet<string>;
  /** Context fields that many resident actors hold alike (a milestone's terms): kept once in memory, not once per actor. */
  readonly sharedContext?: readonly string[];
  /**
   * Context fields fixed when the entity is made (a milestone's terms): only its first event
   * carries them, and a load takes them from there. Every event leaves out the fields that
   * still have their initial value; a load restores them from `initial`.
   */
  readonly firstEventOnly?: readonly string[];
}

export function emptyPersisted<C>(id: string, initial: Position<C>): Persisted<C> {
  return { id, state: initial.state, context: initial.context, version: 0, applied: {}, history: [], lastEventId: '', bytes: 0 };
}
