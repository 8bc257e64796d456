import type { DecisionSlots } from '../../actors/decision.js';
import type { EventLog } from '../events/log.js';
import { reportActors } from '../metrics.js';
import { Actor, type ActorOptions, type Resume } from './actor.js';
import type { Command, EntityKind, Persisted } from './entity.js';

export interface RegistryOptions<C extends DecisionSlots> {
  kind: EntityKind<C>;
  log: EventLog;
  /** Mailbox bound of each actor. */
  mailboxMax: number;
  /** Most resident actors; beyond it the least recently used idle ones are evicted. */
  actorsMax: number;
  /** Idle actors older than this are evicted by the sweep. */
  actorIdleMs: number;
  resume?: Resume<C>;
}

/**
 * The resident actors of one entity kind. A Map keeps insertion order, and every touch
 * re-inserts, so iteration starts at the least recently used actor.
 */
export class Registry<C extends DecisionSlots> {
  private readonly actors = new Map<string, Actor<C>>();
  private readonly sweeper: NodeJS.Timeout;

  private readonly shared: ActorOptions<C>;
  private readonly unreport: () => void;

  constructor(private readonly o: RegistryOptions<C>) {
    this.shared = { kind: o.kind, log: o.log, mailboxMax: o.mailboxMax, resume: o.resume };
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.floor(o.actorIdleMs / 2)));
    this.sweeper.unref();
    this.unreport = reportActors({ kind: o.kind.entity, resident: () => this.actors.size, queued: () => this.queued() });
  }

  /** Commands waiting in the mailboxes of the resident actors (read when /metrics is). */
  private queued(): number {
    let n = 0;
    for (const actor of this.actors.values()) n += actor.queued;
    return n;
  }

  get size(): number {
    return this.actors.size;
  }

  /** The resident actor, or null. Never loads. */
  peek(id: string): Actor<C> | null {
    return this.actors.get(id) ?? null;
  }

  get(id: string): Actor<C> {
    let actor = this.actors.get(id);
    if (actor) {
      this.actors.delete(id);
    } else {
      actor = new Actor<C>(id, this.shared);
    }
    this.actors.set(id, actor);
    if (this.actors.size > this.o.actorsMax) this.evictOverCapacity();
    return actor;
  }

  send(id: string, command: Command): Promise<Persisted<C>> {
    return this.get(id).send(command);
  }

  read(id: string): Promise<Persisted<C>> {
    return this.get(id).read();
  }

  /** After a reconnect to NATS every resident state may have missed changes. */
  invalidateAll(): void {
    for (const actor of this.actors.values()) actor.invalidate();
  }

  private evictOverCapacity(): void {
    for (const [id, actor] of this.actors) {
      if (this.actors.size <= this.o.actorsMax) return;
      if (!actor.busy) this.actors.delete(id);
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - this.o.actorIdleMs;
    for (const [id, actor] of this.actors) {
      if (!actor.busy && actor.lastUsed < cutoff) this.actors.delete(id);
    }
  }

  close(): void {
    this.unreport();
    clearInterval(this.sweeper);
    this.actors.clear();
  }
}
