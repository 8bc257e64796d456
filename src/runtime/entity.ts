import type { AnyStateMachine, EventObject } from 'xstate';
import type { Caller, DecisionSlots, Emitted } from '../../actors/decision.js';
import type { Position } from '../../actors/decide.js';

/** One entry of an entity's history, as GetMilestone shows it. */
export interface HistoryEntry {
  version: number;
  /** Short event type, e.g. "released". */
  type: string;
  by: string;
  at: string;
  data: Emitted['data'];
}

/**
 * The state of an entity as every event carries it (the state after the event), so loading
 * an actor is one direct get of the last message on its subject.
 */
export interface Persisted<C> {
  id: string;
  /** Machine state name. */
  state: string;
  context: C;
  /** Number of events applied; equals the history length. */
  version: number;
  /** Idempotency keys applied, with the digest of the request, so a repeat hours later gets the first answer. */
  applied: Record<string, { digest: string; version: number }>;
  history: HistoryEntry[];
}

/** What the data of an entity event holds: the change, who made it, and the state after. */
export interface EntityEventData<C> {
  by: string;
  version: number;
  change: Emitted['data'];
  state: Persisted<C>;
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
}

export function emptyPersisted<C>(id: string, initial: Position<C>): Persisted<C> {
  return { id, state: initial.state, context: initial.context, version: 0, applied: {}, history: [] };
}
