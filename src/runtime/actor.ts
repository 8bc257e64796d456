import type { DecisionSlots, Rejection } from '../../actors/decision.js';
import type { EventObject } from 'xstate';
import { decide, type Position } from '../../actors/decide.js';
import {
  Aborted,
  DeadlineExceeded,
  EscrowError,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  ResourceExhausted,
} from '../errors.js';
import { cloudEvent, encode, eventType } from '../events/cloudevent.js';
import { EventLog, VERSION_HEADER, WrongLastSequence } from '../events/log.js';
import { eventId, keyHash } from '../ids.js';
import { metrics } from '../metrics.js';
import { activeContext, withContext, type TraceContext } from '../tracing.js';
import {
  appliedRecord,
  carriedFields,
  compactContext,
  emptyPersisted,
  eventState,
  historyLine,
  withKey,
  type Command,
  type EntityEventData,
  type EntityKind,
  type HistoryEntry,
  type Persisted,
} from './entity.js';
import type { Stored } from '../events/log.js';

/** A saga step to apply after loading, e.g. a funding outcome the actor missed. */
export type Resume<C> = (state: Persisted<C>, log: EventLog) => Promise<Command | null>;

/** What every actor of one kind shares (one object per registry, not one per actor). */
export interface ActorOptions<C extends DecisionSlots> {
  kind: EntityKind<C>;
  log: EventLog;
  mailboxMax: number;
  resume?: Resume<C> | undefined;
}

/** A command made from the state at its turn in the mailbox (a saga step), or nothing to do. */
export type CommandFor<C> = (state: Persisted<C>) => Command | null;

interface Job<C> {
  command: Command | CommandFor<C>;
  resolve: (state: Persisted<C>) => void;
  reject: (err: unknown) => void;
  /** The sender's trace context: the command runs under its span (src/tracing.ts). */
  trace: TraceContext;
}

/** Appends that lose an optimistic race are decided again this many times, then ABORTED. */
const CONFLICT_RETRIES_MAX = 2;
/**
 * Most events one entity may have before only final transitions are accepted. It bounds a
 * resident actor (which holds the history) and the cost of loading one (a direct get per event).
 */
export const ENTITY_EVENTS_MAX = 200;
/**
 * Most bytes of events one entity may have before only final transitions are accepted: each
 * event that changes a text carries it (a cancellation request its reason), so long texts
 * would otherwise let one milestone's events grow to several MB within the event limit.
 */
export const ENTITY_BYTES_MAX = 512 * 1024;

/**
 * Values of the kind's shared context fields (a milestone's terms, its parties' and project's
 * ids), one object or string per distinct value, however many resident actors hold it; the
 * oldest made goes first when a table is full.
 */
const sharedObjects = new Map<string, object>();
const sharedStrings = new Map<string, string>();
const SHARED_OBJECTS_MAX = 1_000;
const SHARED_STRINGS_MAX = 20_000;
function intern<C>(context: C, fields: readonly string[]): C {
  const c = context as Record<string, unknown>;
  for (const k of fields) {
    const v = c[k];
    if (typeof v === 'string') {
      let one = sharedStrings.get(v);
      if (one === undefined) {
        if (sharedStrings.size >= SHARED_STRINGS_MAX) sharedStrings.delete(sharedStrings.keys().next().value ?? '');
        sharedStrings.set(v, (one = v));
      }
      c[k] = one;
      continue;
    }
    if (!v || typeof v !== 'object') continue;
    const json = JSON.stringify(v);
    let one = sharedObjects.get(json);
    if (!one) {
      if (sharedObjects.size >= SHARED_OBJECTS_MAX) sharedObjects.delete(sharedObjects.keys().next().value ?? '');
      sharedObjects.set(json, (one = Object.freeze(v)));
    }
    c[k] = one;
  }
  return context;
}

/** escrow.milestone.released.v1 -> released */
function shortType(type: string): string {
  const parts = type.split('.');
  return parts.length >= 4 ? parts.slice(2, -1).join('.') : type;
}

/**
 * The error a refusal is answered with. `version`: the version of the state a refusal for the
 * state was decided from, sent in the status's ErrorInfo (`version`): a copy of the same
 * command that meets a later version elsewhere may still be legal there (docs/api.md, Idempotency).
 */
export function rejectionError(r: Rejection, version?: number): EscrowError {
  switch (r.code) {
    case 'PERMISSION_DENIED':
      return new PermissionDenied(r.reason, r.message);
    case 'NOT_FOUND':
      return new NotFound(r.reason, r.message);
    case 'INVALID_ARGUMENT':
      return new InvalidArgument(r.reason, r.message);
    default:
      return new FailedPrecondition(r.reason, r.message, version === undefined ? undefined : { version: String(version) });
  }
}

/**
 * One actor per entity: a bounded mailbox and one command at a time. It decides with the
 * pure machine, appends the event with the expected last subject sequence, and adopts the
 * new state only after the ack. Refusals are answered from memory with no I/O.
 */
export class Actor<C extends DecisionSlots> {
  private state: Persisted<C> | null = null;
  private seq = 0;
  /** The state may be behind the log (another process appended): refreshed before the next decision or read. */
  private stale = false;
  /** Made on first use and dropped when empty: most resident actors are idle, and hold none. */
  private mailbox: Job<C>[] | null = null;

  /** Commands waiting behind the one running. */
  get queued(): number {
    return this.mailbox?.length ?? 0;
  }
  private running = false;
  private resuming = false;
  /** The version of the append in flight: its echo from the log is this actor's own, not news. */
  private appending: number | null = null;
  private listeners: Set<(state: Persisted<C>) => void> | null = null;
  lastUsed = Date.now();

  constructor(
    readonly id: string,
    private readonly o: ActorOptions<C>,
  ) {}

  /** Busy actors (queued work or someone waiting on them) are never evicted. */
  get busy(): boolean {
    return this.running || (this.mailbox?.length ?? 0) > 0 || (this.listeners?.size ?? 0) > 0;
  }

  /** The state as last adopted, or null if not loaded (or possibly behind the log). No I/O. */
  get current(): Persisted<C> | null {
    return this.stale ? null : this.state;
  }

  send(command: Command): Promise<Persisted<C>> {
    return this.enqueue(command, false);
  }

  /**
   * Queues a saga step (a ledger outcome) behind everything already in the mailbox, so it
   * meets the state the commands before it produced, however early it arrived (before the
   * ack of the append that asked for it, say). `step` builds the command from that state, or
   * returns null when the state no longer waits for it. Never refused for a full mailbox: an
   * outcome is never dropped, and there is at most one per saga.
   */
  sendStep(step: CommandFor<C>): Promise<Persisted<C>> {
    return this.enqueue(step, true);
  }

  private enqueue(command: Command | CommandFor<C>, unbounded: boolean): Promise<Persisted<C>> {
    this.lastUsed = Date.now();
    // While the actor is busy, a caller who is no party is refused at once from the state held
    // (the parties of an entity never change once set), so strangers cannot fill the mailbox
    // ahead of the parties' own commands. A repeat of a command applied before is left to its
    // turn, which answers it as the first time; a state that may be behind is not judged from.
    if (
      typeof command !== 'function' &&
      (this.running || (this.mailbox?.length ?? 0) > 0) &&
      this.state &&
      !this.stale &&
      command.event.type !== '__read' &&
      !appliedRecord(this.state.applied, keyHash(command.key))
    ) {
      const d = decide(this.o.kind.machine, { state: this.state.state, context: this.state.context }, command.event, this.permission);
      if (d.kind === 'rejected' && d.rejection.code === 'PERMISSION_DENIED') return Promise.reject(rejectionError(d.rejection));
    }
    if (!unbounded && (this.mailbox?.length ?? 0) >= this.o.mailboxMax) {
      return Promise.reject(new ResourceExhausted('MAILBOX_FULL', `too many commands queued for ${this.o.kind.entity} ${this.id}`));
    }
    return new Promise((resolve, reject) => {
      (this.mailbox ??= []).push({ command, resolve, reject, trace: activeContext() });
      if (!this.running) void this.drain();
    });
  }

  /** Loads the state if needed and returns it; goes through the mailbox so it sees every prior command. */
  read(): Promise<Persisted<C>> {
    return this.send({ key: '', digest: '', event: { type: '__read', by: { id: '', roles: [] }, at: '' } });
  }

  /**
   * Another process appended version `version`: if that is newer than what this actor holds,
   * its state is dropped and reloaded from the log before the next decision or read.
   */
  observe(version: number): void {
    if (version === this.appending) return;
    if (this.state && version > this.state.version) this.stale = true;
  }

  /** Marks the state as possibly behind; the next command reads what the log has beyond it. */
  invalidate(): void {
    this.stale = true;
  }

  /** Calls `listener` with each state adopted from now on; returns the unsubscribe function. */
  subscribe(listener: (state: Persisted<C>) => void): () => void {
    (this.listeners ??= new Set()).add(listener);
    return () => {
      this.listeners?.delete(listener);
      if (this.listeners?.size === 0) this.listeners = null;
      this.lastUsed = Date.now();
    };
  }

  /** The kind's permission table, asked before its machine (none: the machine decides alone). */
  private readonly permission = (at: Position<C>, event: EventObject): Rejection | null => this.o.kind.permission?.(at, event) ?? null;

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let job = this.mailbox?.shift(); job; job = this.mailbox?.shift()) {
        try {
          if (typeof job.command !== 'function' && job.command.deadline !== undefined && Date.now() > job.command.deadline) {
            throw new DeadlineExceeded('DEADLINE_EXCEEDED', 'the deadline passed before the command was started');
          }
          job.resolve(await withContext(job.trace, () => this.handle(job.command)));
        } catch (err) {
          job.reject(err);
        }
      }
    } finally {
      this.running = false;
      if (this.mailbox?.length === 0) this.mailbox = null;
      this.lastUsed = Date.now();
    }
  }

  /**
   * Loads the state: the last event's decision state, with the idempotency keys and history
   * rebuilt from the subject's events (a direct get each). A stale actor reads only the
   * events after the ones it holds.
   */
  private async load(): Promise<Persisted<C>> {
    const subject = this.subject();
    const last = await this.o.log.readLast<EntityEventData<C>>(subject);
    if (!last) {
      this.state = emptyPersisted(this.id, this.o.kind.initial);
      this.seq = 0;
    } else if (!(this.state && this.stale && last.seq === this.seq)) {
      const base = this.state && this.stale && this.seq > 0 && last.seq > this.seq ? this.state : null;
      const kept = { applied: base?.applied ?? '', history: [...(base?.history ?? [])] };
      let bytes = base?.bytes ?? 0;
      // The fields an event carries only when it changes them: from the state held, then from each event read.
      const rules = this.o.kind.eventContext;
      let carried = carriedFields<C>(rules, base?.context);
      const add = (e: Stored<EntityEventData<C>>) => {
        bytes += e.size;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an event's JSON is checked, not trusted, to have its type's shape
        carried = { ...carried, ...carriedFields<C>(rules, e.event.data.state?.context) };
        this.record(e, kept);
      };
      for await (const e of this.o.log.readSubject<EntityEventData<C>>(subject, base ? this.seq : 0, last.seq)) add(e);
      add(last);
      // Fields left out of the last event (at their initial value, or carried by an earlier one), and
      // fields added to a machine's context later, get their values here.
      const s = eventState({ ...last.event, subject: this.id }, this.o.kind.initial.context, rules, carried);
      // A context's own id (a milestone's) is the entity's: one string, not a second copy from the first event.
      const own = s.context as { id?: unknown };
      if (own.id === this.id) own.id = this.id;
      // Written out field by field, so every state has one shape (a spread made it hold ~290 bytes more).
      this.state = {
        id: s.id,
        state: s.state,
        version: s.version,
        context: intern(s.context, this.o.kind.sharedContext ?? []),
        applied: kept.applied,
        // Sized to fit: an array grown by push keeps room for more.
        history: kept.history.slice(),
        lastEventId: last.event.id,
        bytes,
      };
      this.seq = last.seq;
    }
    this.stale = false;
    for (const listener of this.listeners ?? []) listener(this.state);
    if (this.o.resume && !this.resuming) {
      this.resuming = true;
      try {
        const step = await this.o.resume(this.state, this.o.log);
        if (step) await this.apply(step);
      } finally {
        this.resuming = false;
      }
    }
    // What was loaded may have been invalidated while the resume step ran.
    return this.fresh() ?? this.load();
  }

  /** The state held, unless it was invalidated (read afresh: invalidate() runs between awaits). */
  private fresh(): Persisted<C> | null {
    return this.state && !this.stale ? this.state : null;
  }

  /** Adds one stored event to the keys and history being rebuilt. */
  private record(e: Stored<EntityEventData<C>>, kept: { applied: string; history: string[] }): void {
    const d = e.event.data;
    const legacy = d.state as { history?: HistoryEntry[]; applied?: Record<string, { digest: string; version: number }> };
    if (legacy.history && legacy.applied) {
      // An event of an earlier version carried the whole history and the raw keys.
      kept.history.splice(0, kept.history.length, ...legacy.history.map(historyLine));
      kept.applied = Object.entries(legacy.applied).reduce((a, [k, v]) => withKey(a, keyHash(k), v.digest, v.version), '');
      return;
    }
    kept.applied = withKey(kept.applied, d.key, d.digest, d.version);
    kept.history.push(historyLine({ version: d.version, type: shortType(e.event.type), by: d.by, at: e.event.time, data: d.change }));
  }

  /** Whether the log holds events beyond the ones this actor decided from; if so the state is marked stale. */
  private async movedOnLog(): Promise<boolean> {
    const last = await this.o.log.readLast<EntityEventData<C>>(this.subject());
    if ((last?.seq ?? 0) === this.seq) return false;
    this.stale = true;
    return true;
  }

  private subject(): string {
    return `${this.o.log.names.namespace}.${this.o.kind.entity}.${this.id}`;
  }

  private async handle(job: Command | CommandFor<C>): Promise<Persisted<C>> {
    const state = this.state && !this.stale ? this.state : await this.load();
    const command = typeof job === 'function' ? job(state) : job;
    if (!command || command.event.type === '__read') return state;
    return this.apply(command);
  }

  private async apply(command: Command): Promise<Persisted<C>> {
    for (let attempt = 0; ; attempt++) {
      const state = this.state && !this.stale ? this.state : await this.load();
      const key = keyHash(command.key);
      const seen = appliedRecord(state.applied, key);
      if (seen) {
        if (seen.digest !== command.digest) {
          throw new InvalidArgument('IDEMPOTENCY_KEY_REUSED', 'this idempotency key was used for a different request');
        }
        return state;
      }
      const decision = decide(this.o.kind.machine, { state: state.state, context: state.context }, command.event, this.permission);
      if (decision.kind === 'rejected') {
        // A refusal for the state (not the party, which never changes) is answered only from a
        // state the log still ends at: another gateway may have moved the entity where the
        // command is legal, or applied this very command (a copy sent to it). A final state
        // never moves. (A state just loaded is not enough: a load reads the last event first
        // and then every event before it, so the log may have moved on meanwhile.)
        const settled = this.o.kind.finalStates.has(state.state);
        if (decision.rejection.code !== 'PERMISSION_DENIED' && !settled && attempt < CONFLICT_RETRIES_MAX && (await this.movedOnLog()))
          continue;
        throw rejectionError(decision.rejection, state.version);
      }
      if (decision.kind === 'unchanged') return state;
      const version = state.version + 1;
      const id = eventId(this.o.kind.entity, this.id, command.key);
      const next: Persisted<C> = {
        id: state.id,
        state: decision.next.state,
        version,
        context: intern({ ...decision.next.context, rejection: null, emitted: null }, this.o.kind.sharedContext ?? []),
        applied: withKey(state.applied, key, command.digest, version),
        history: [
          ...state.history,
          historyLine({ version, type: decision.emitted.type, by: command.event.by.id, at: command.event.at, data: decision.emitted.data }),
        ],
        lastEventId: id,
        bytes: state.bytes,
      };
      // The event carries its own change and key and the decision state after it, never the history.
      const event = cloudEvent<EntityEventData<C>>({
        id,
        source: this.o.log.names.source,
        type: eventType(this.o.kind.entity, decision.emitted.type),
        subject: this.id,
        time: command.event.at,
        data: {
          by: command.event.by.id,
          version,
          key,
          digest: command.digest,
          change: decision.emitted.data,
          state: {
            state: decision.next.state,
            context: compactContext(
              decision.next.context,
              this.o.kind.initial.context,
              this.o.kind.eventContext,
              version === 1 ? null : state.context,
              command.event.at,
            ),
          },
        },
      });
      // At either limit (events, or bytes: texts repeat in the decision state of every event)
      // only a final transition (release of all, cancel, a dispute's end) or one the machine
      // bounds itself (a dispute's steps), or one out of a state that must always be left (an
      // unfreeze), may still be appended, so money held is never stuck.
      const size = encode(event).length;
      const target = decision.next.state;
      const exempt =
        this.o.kind.finalStates.has(target) || !!this.o.kind.boundedStates?.has(target) || !!this.o.kind.leftPastLimits?.has(state.state);
      if (!exempt) {
        if (state.version >= ENTITY_EVENTS_MAX) {
          throw new FailedPrecondition(
            'EVENT_LIMIT',
            `${this.o.kind.entity} ${this.id} has reached ${ENTITY_EVENTS_MAX} events; only a final release or cancel, or a dispute, is accepted`,
          );
        }
        if (state.bytes + size > ENTITY_BYTES_MAX) {
          throw new FailedPrecondition(
            'EVENT_BYTES_LIMIT',
            `${this.o.kind.entity} ${this.id} would pass ${ENTITY_BYTES_MAX} bytes of events; only a final release or cancel, or a dispute, is accepted`,
          );
        }
      }
      next.bytes = state.bytes + size;
      this.appending = version;
      try {
        const ack = await this.o.log.append(
          this.subject(),
          event,
          this.seq,
          { [VERSION_HEADER]: String(version) },
          { deadline: command.deadline },
        );
        if (ack.duplicate) {
          // The same command was appended before (a retry, or another gateway): the log
          // already holds its key, so read what it has and answer from there.
          this.stale = true;
          if (attempt >= CONFLICT_RETRIES_MAX) throw new Aborted('CONCURRENT_MODIFICATION', 'the milestone kept changing; retry');
          continue;
        }
        this.state = next;
        this.seq = ack.seq;
        for (const listener of this.listeners ?? []) listener(next);
        return next;
      } catch (err) {
        // Whatever happened, our view may be stale now: read the log before the next decision.
        this.stale = true;
        if (err instanceof WrongLastSequence) metrics.appendConflicts.inc({ entity: this.o.kind.entity });
        if (err instanceof WrongLastSequence && attempt < CONFLICT_RETRIES_MAX) continue;
        if (err instanceof WrongLastSequence) throw new Aborted('CONCURRENT_MODIFICATION', 'lost an optimistic race repeatedly; retry');
        throw err;
      } finally {
        this.appending = null;
      }
    }
  }
}
