import type { Subscription } from '@nats-io/transport-node';
import { decode } from '../events/cloudevent.js';
import type { EventLog } from '../events/log.js';
import { SIGNATURE_HEADER } from '../events/signing.js';
import type { Outcome } from '../events/outcome.js';
import { reportWaiters } from '../metrics.js';

/**
 * Ledger outcomes as a gateway sees them. Live outcomes arrive on a plain NATS subscription
 * (fast, but missed while disconnected); every wait also reads the outcome's subject from
 * the stream, so an outcome published before the wait, or missed, is still found.
 */
export class Outcomes {
  private readonly waiters = new Map<string, Set<(o: Outcome) => void>>();
  /** When each wait began (for the metrics: the oldest wait's age). Map order is start order. */
  private readonly since = new Map<(o: Outcome) => void, number>();
  private sub: Subscription | null = null;
  private unreport: (() => void) | null = null;

  constructor(
    private readonly log: EventLog,
    /** Called with every live hold (funding or arbitration fee) outcome, to move resident milestone actors on. */
    private readonly onHold: (o: Outcome) => void,
  ) {}

  start(): void {
    this.unreport = reportWaiters(() => ({
      waiting: this.since.size,
      oldestMs: Date.now() - (this.since.values().next().value ?? Date.now()),
    }));
    this.sub = this.log.nc.subscribe(this.log.names.outcomes, {
      callback: (err, msg) => {
        if (err) return;
        // Only the ledger's own outcomes: anything else on these subjects is ignored.
        if (!this.log.verified(msg.subject, msg.data, msg.headers?.get(SIGNATURE_HEADER))) return;
        let outcome: Outcome;
        try {
          outcome = decode<Outcome>(msg.data).data;
        } catch {
          return;
        }
        this.deliver(outcome);
        if (outcome.kind === 'hold' || outcome.kind === 'fee_hold') this.onHold(outcome);
      },
    });
  }

  /** The stored outcome of `causationId`, or null if the ledger has not decided yet. */
  async lookup(causationId: string): Promise<Outcome | null> {
    const stored = await this.log.readLast<Outcome>(this.log.names.outcome(causationId)).catch((err: unknown) => {
      // A forged message on the outcome's subject is no outcome; the live one is still awaited.
      if ((err as { reason?: string }).reason === 'EVENT_UNVERIFIED') return null;
      throw err;
    });
    return stored ? stored.event.data : null;
  }

  /**
   * Runs `append` (which publishes the event `causationId`) and waits up to `timeoutMs` for
   * its outcome; null on timeout. The waiter is registered before the append, so a fast
   * ledger is never missed; only a repeat (the event was appended before) looks the outcome
   * up on the stream at once.
   */
  async waitFor(causationId: string, timeoutMs: number, append: () => Promise<{ duplicate: boolean }>): Promise<Outcome | null> {
    let settle!: (o: Outcome | null) => void;
    const result = new Promise<Outcome | null>((resolve) => (settle = resolve));
    const listener = (o: Outcome) => settle(o);
    let set = this.waiters.get(causationId);
    if (!set) this.waiters.set(causationId, (set = new Set()));
    set.add(listener);
    this.since.set(listener, Date.now());
    let timer: NodeJS.Timeout | undefined;
    try {
      const { duplicate } = await append();
      if (duplicate)
        void this.lookup(causationId).then(
          (o) => o && settle(o),
          () => {},
        );
      timer = setTimeout(() => settle(null), timeoutMs);
      const live = await result;
      return live ?? (await this.lookup(causationId).catch(() => null));
    } finally {
      clearTimeout(timer);
      set.delete(listener);
      this.since.delete(listener);
      if (set.size === 0) this.waiters.delete(causationId);
    }
  }

  private deliver(o: Outcome): void {
    for (const listener of this.waiters.get(o.causationId) ?? []) listener(o);
  }

  stop(): void {
    this.unreport?.();
    this.sub?.unsubscribe();
  }
}
