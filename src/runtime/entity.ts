import type { AnyStateMachine, EventObject } from 'xstate';
import type { Caller, DecisionSlots, Emitted, Rejection } from '../../actors/decision.js';
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
   * repeat hours later gets the first answer: a line "\n<keyHash> <digest> <version>" each,
   * in one string (an object per key cost a resident actor about 135 bytes, a line about 50).
   * Written with withKey(), read with appliedRecord() or appliedKey().
   */
  applied: string;
  /** The history, one JSON line per event (historyLine()); read with historyOf() and lastHistory(). */
  history: readonly string[];
  /** The id of the last event (its CloudEvents id and JetStream msgID); '' before the first. */
  lastEventId: string;
  /** Bytes of all the entity's events on the log, so far. */
  bytes: number;
}

/**
 * The decision state as an event carries it: the state name and a compact context (see
 * EntityKind.carriedWhenChanged). The entity's id is the event's subject and its version the
 * data's `version`; events of an earlier version also carried both here.
 */
export interface EventState<C> {
  state: string;
  context: Partial<C>;
  id?: string;
  version?: number;
}

/** What the data of an entity event holds: who made the change, the change, its command, and the decision state after it. */
export interface EntityEventData<C> {
  by: string;
  version: number;
  /** keyHash of the command's scoped idempotency key, and the digest of its content. */
  key: string;
  digest: string;
  change: Emitted['data'];
  state: EventState<C>;
}

/**
 * How an entity's events carry its context, so they stay small: the rules live here, used by
 * the actor that writes events and loads from them, and by the ledger that projects them.
 */
export interface EventContextRules {
  /**
   * Fields set once or seldom (a milestone's terms, texts, amount): an event carries one only
   * when it changes it (the first event carries all of them), and a reader takes each from the
   * newest event that carried it. Every other field is in every event unless it has its
   * initial value, which a reader restores from the kind's initial context.
   */
  readonly carriedWhenChanged: readonly string[];
  /**
   * Of those, the ones the first event carries even at their initial value, because that value
   * is today's configuration default and a later version may change it (a milestone's terms).
   * The first event leaves out the others at their initial value.
   */
  readonly firstEventAlways?: readonly string[];
  /** The field that holds the time of the last change: left out when it equals the event's time, which a reader puts back. */
  readonly timeField?: string;
}

/** A context as an event carries it (see EventContextRules); `before` is the context before the event, null for the first. */
export function compactContext<C>(
  context: C,
  initial: C,
  rules: EventContextRules | undefined,
  before: C | null,
  time: string,
): Partial<C> {
  const init = initial as Record<string, unknown>;
  const prior = before as Record<string, unknown> | null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(context as Record<string, unknown>)) {
    // The decision slots mean nothing once decided.
    if (k === 'rejection' || k === 'emitted') continue;
    if (rules?.carriedWhenChanged.includes(k)) {
      if (prior === null ? rules.firstEventAlways?.includes(k) || !same(v, init[k]) : !same(v, prior[k])) out[k] = v;
    } else if (k === rules?.timeField ? v !== time : !same(v, init[k])) {
      out[k] = v;
    }
  }
  return out as Partial<C>;
}

/** The fields of `rules.carriedWhenChanged` a context holds (an event's: the ones it changed; every field, in an event of an earlier version). */
export function carriedFields<C>(rules: EventContextRules | undefined, context: Partial<C> | undefined): Partial<C> {
  const out: Record<string, unknown> = {};
  const c = (context ?? {}) as Record<string, unknown>;
  for (const k of rules?.carriedWhenChanged ?? []) if (c[k] !== undefined) out[k] = c[k];
  return out as Partial<C>;
}

/**
 * The decision state after an event, whole: id and version from the event, the fields it left
 * out from `carried` (what earlier events carried), the event's time and the initial context.
 */
export function eventState<C>(
  event: { subject: string; time: string; data: Pick<EntityEventData<C>, 'version' | 'state'> },
  initial: C,
  rules: EventContextRules | undefined,
  carried: Partial<C> = {},
): EntityState<C> {
  const s = event.data.state;
  const time =
    rules?.timeField && (s.context as Record<string, unknown>)[rules.timeField] === undefined ? { [rules.timeField]: event.time } : {};
  return {
    id: s.id ?? event.subject,
    state: s.state,
    version: s.version ?? event.data.version,
    context: { ...initial, ...carried, ...time, ...s.context },
  };
}

function same(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && JSON.stringify(a) === JSON.stringify(b));
}

/** The record of a scoped idempotency key on an entity, if a command with it was applied. */
export function appliedKey<C>(state: Persisted<C>, scopedIdempotencyKey: string): { digest: string; version: number } | undefined {
  return appliedRecord(state.applied, keyHash(scopedIdempotencyKey));
}

/** The record of a hashed key in `applied`, if any (the last one, if an event repeated a key). */
export function appliedRecord(applied: string, hash: string): { digest: string; version: number } | undefined {
  const at = applied.lastIndexOf(`\n${hash} `);
  if (at < 0) return undefined;
  const end = applied.indexOf('\n', at + 1);
  const line = applied.slice(at + hash.length + 2, end < 0 ? applied.length : end);
  const space = line.lastIndexOf(' ');
  return { digest: line.slice(0, space), version: Number(line.slice(space + 1)) };
}

/** `applied` with one more record. */
export function withKey(applied: string, hash: string, digest: string, version: number): string {
  // Hashes and digests are base64url: a space or a line break would make the records ambiguous.
  if (/\s/.test(hash) || /\s/.test(digest))
    throw new Error(`malformed idempotency record: ${JSON.stringify(hash)} ${JSON.stringify(digest)}`);
  return exact(`${applied}\n${hash} ${digest} ${version}`);
}

/** One history entry as a resident actor holds it: a JSON array, a third of an object's heap. */
export function historyLine(e: HistoryEntry): string {
  // The time as epoch milliseconds when it reads back to the same ISO text (13 characters, not 26).
  const ms = Date.parse(e.at);
  const at = Number.isFinite(ms) && new Date(ms).toISOString() === e.at ? ms : e.at;
  return exact(JSON.stringify([e.version, e.type, e.by, at, e.data]));
}

/**
 * The string copied to one flat piece. JSON.stringify and concatenation give a tree of pieces
 * (which keeps the pieces, and through a key or digest parsed from an event, that event's
 * text); held by thousands of resident actors the tree costs more than the text. (A search,
 * which flattens in place, left as much behind; a copy through a Buffer made external memory.)
 */
function exact(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

function entryOf(line: string): HistoryEntry {
  const [version, type, by, at, data] = JSON.parse(line) as [number, string, string, string | number, HistoryEntry['data']];
  return { version, type, by, at: typeof at === 'number' ? new Date(at).toISOString() : at, data };
}

/** The entity's history, oldest first. */
export function historyOf<C>(state: Persisted<C>): HistoryEntry[] {
  return state.history.map(entryOf);
}

/** The entity's last history entry, if any. */
export function lastHistory<C>(state: Persisted<C>): HistoryEntry | undefined {
  const line = state.history.at(-1);
  return line === undefined ? undefined : entryOf(line);
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
  /** Who may issue a command, asked before the machine's state rules (the kind's permission table). */
  permission?(at: Position<C>, event: EventObject): Rejection | null;
  readonly initial: Position<C>;
  /** States after which nothing can happen: a transition into one is allowed even at the event limit. */
  readonly finalStates: ReadonlySet<string>;
  /**
   * States whose events the machine bounds itself (a dispute: capped proposals and escalation
   * attempts, one dispute per milestone): transitions into them are allowed past the limit too,
   * so money held in them can always reach a final state.
   */
  readonly boundedStates?: ReadonlySet<string>;
  /**
   * States that may always be left, past the limits too (a milestone frozen by support staff:
   * its unfreeze must never be refused for size, or the money would stay frozen). Going into
   * one is subject to the limits as any other transition.
   */
  readonly leftPastLimits?: ReadonlySet<string>;
  /** Context fields that many resident actors hold alike (a milestone's terms, its parties' ids): kept once in memory, not once per actor. */
  readonly sharedContext?: readonly string[];
  /** How its events carry the context. */
  readonly eventContext?: EventContextRules;
}

export function emptyPersisted<C>(id: string, initial: Position<C>): Persisted<C> {
  return { id, state: initial.state, context: initial.context, version: 0, applied: '', history: [], lastEventId: '', bytes: 0 };
}
