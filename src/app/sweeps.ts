import { SYSTEM_CALLER, type Caller } from '../../actors/decision.js';
import type { MilestoneContext, MilestoneEvent } from '../../actors/milestone/index.js';
import { sub } from '../../actors/money.js';
import { termsFor, type TermsPolicy } from '../../actors/terms.js';
import type { EventLog } from '../events/log.js';
import { digest, scopedKey } from '../ids.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import { retriedLater } from '../log.js';
import { metrics } from '../metrics.js';
import { lastHistory } from '../runtime/entity.js';
import type { Registry } from '../runtime/registry.js';
import type { AccountEventData, Funds } from './funds.js';

const SWEEP_EVERY_MS = 2_000;
const SWEEP_AFTER_MS = 3_000;
const SWEEP_BATCH_MAX = 100;
const TIMER_BATCH_MAX = 200;
const SYSTEM: Caller = { id: SYSTEM_CALLER, roles: [] };

export interface SweepOptions {
  log: EventLog;
  pool: Pool;
  now: () => Date;
  terms: TermsPolicy;
  /** How often due timers are looked for. */
  timerScanMs: number;
  /** A reservation no milestone consumed for this long is given back. */
  reservationTtlMs: number;
  milestones: Registry<MilestoneContext>;
  funds: Funds;
}

/**
 * The milestone product's background work, run by every gateway and worker: unfinished sagas
 * finished, due timers fired, unconsumed reservations given back. Each step is keyed, so any
 * number of processes may run it at once.
 */
export class Sweeps {
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private timers: NodeJS.Timeout | null = null;
  private firing = false;
  private clearing = false;
  /** The log's tail after this process's last clears: none again until the ledger is past it. */
  private clearsUpTo: number | null = null;

  constructor(private readonly o: SweepOptions) {}

  private get milestones(): Registry<MilestoneContext> {
    return this.o.milestones;
  }

  private get funds(): Funds {
    return this.o.funds;
  }

  start(): void {
    this.sweeper = setInterval(() => void this.sweepPendingFunding(), SWEEP_EVERY_MS);
    this.sweeper.unref();
    this.timers = setInterval(() => {
      void this.fireDueTimers().catch(retriedLater('firing due timers'));
      void this.clearDue().catch(retriedLater('clearing due payouts'));
    }, this.o.timerScanMs);
    this.timers.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.timers) clearInterval(this.timers);
  }

  /**
   * Finishes funding sagas nobody is waiting for (the creating gateway died, or its answer
   * was PENDING_FUNDING): loading such a milestone applies the ledger's outcome. Any gateway
   * may do it; the idempotent saga step makes repeats harmless.
   */
  private async sweepPendingFunding(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const stale = await read.staleSagas(this.o.pool, SWEEP_AFTER_MS, SWEEP_BATCH_MAX);
      metrics.sagasStale.set(stale.length);
      metrics.sagaOldestSeconds.set((Date.now() - (stale[0]?.updatedAt.getTime() ?? Date.now())) / 1000);
      for (const { id } of stale) {
        this.milestones.peek(id)?.invalidate();
        await this.milestones.read(id).catch(retriedLater(`finishing the funding saga of ${id}`));
      }
      await this.sweepReservations();
    } catch (err) {
      // The database is down: the next sweep tries again.
      retriedLater('the sweep of unfinished sagas and reservations')(err);
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Clears the payouts whose clearing time has come (ESCROW_CLEARING_PERIOD): each by its
   * user's account actor, under an event id made from the payout's, so every process that
   * clears it decides the same one event and the ledger posts it once. Until the ledger has
   * applied this process's last clears it appends none again: a ledger behind for longer than
   * the log's duplicate window would otherwise get a stored copy of each clear every scan (it
   * would skip them, by event id, but the log would fill). One failing clear does not hold up
   * the others. Returns how many clears this call asked for.
   */
  async clearDue(): Promise<number> {
    if (this.clearing) return 0;
    this.clearing = true;
    try {
      if (this.clearsUpTo !== null && (await read.ledgerCursor(this.o.pool)) < this.clearsUpTo) return 0;
      const due = await read.dueClearings(this.o.pool, this.o.now(), TIMER_BATCH_MAX);
      let asked = 0;
      for (const c of due) {
        const done = await this.funds
          .clear(c.userId, {
            causationId: c.eventId,
            milestoneId: c.milestoneId,
            currency: c.currency,
            amount: c.amount,
            time: this.o.now().toISOString(),
          })
          .then(() => true)
          .catch((err: unknown) => (retriedLater(`clearing the payout ${c.eventId}`)(err), false));
        if (done) asked++;
      }
      if (due.length > 0) this.clearsUpTo = await this.o.log.tailSeq();
      return asked;
    } finally {
      this.clearing = false;
    }
  }

  /**
   * Fires the timers that are due (dispute response deadlines, auto-release): each becomes a
   * DEADLINE command through the milestone's actor, like any other command. Every gateway and
   * worker runs this; the command's key names the timer, so whoever fires it first appends the
   * event and every other attempt is a replay (same key) or refused (the state moved on): a
   * timer fires once. Returns how many timers were fired by this call.
   */
  async fireDueTimers(): Promise<number> {
    if (this.firing) return 0;
    this.firing = true;
    let fired = 0;
    try {
      const now = this.o.now();
      for (const due of await read.dueTimers(this.o.pool, now, TIMER_BATCH_MAX)) {
        const key = scopedKey(SYSTEM_CALLER, `deadline:${due.dueAt.toISOString()}`);
        const before = this.milestones.peek(due.id)?.current?.version;
        const after = await this.milestones
          .send(due.id, { key, digest: digest({ op: 'deadline' }), event: { type: 'DEADLINE', by: SYSTEM, at: now.toISOString() } })
          .catch(() => null);
        if (after && after.version !== before && lastHistory(after)?.by === SYSTEM_CALLER) {
          fired++;
          metrics.timerLateness.observe(Math.max(0, now.getTime() - due.dueAt.getTime()) / 1000);
        }
      }
    } finally {
      this.firing = false;
    }
    return fired;
  }

  /**
   * Gives back reservations that no milestone consumed within the bound (the creating gateway
   * died between the reservation and the milestone, or the command was refused after it):
   * - the milestone never appeared: its place is voided (an append at subject sequence 0, so
   *   no create can consume the reservation afterwards), and the void gives the money back;
   * - it exists and consumed another reservation, or none, and will not consume this one (it
   *   is past `requested`): the employer's account actor releases the reservation.
   * A milestone still `requested` keeps the reservation of its accept for a retry with that
   * key. Each reservation is given back once: both ways are keyed by its id.
   */
  async sweepReservations(ttlMs = this.o.reservationTtlMs): Promise<number> {
    let released = 0;
    for (const r of await read.staleReservations(this.o.pool, ttlMs, SWEEP_BATCH_MAX)) {
      const milestone = await this.milestones.read(r.milestoneId);
      const c = milestone.context;
      if (c.reservationId === r.reservationId || milestone.state === 'requested') continue;
      if (milestone.version === 0) {
        const made = await this.o.log.readAt<AccountEventData>(r.seq);
        const change = made?.event.data.change as { fee?: string; projectId?: string; freelancerId?: string } | undefined;
        if (!made || change?.projectId === undefined) continue;
        const amount = sub(r.currency, r.amount, change.fee ?? '0');
        await this.milestones.send(r.milestoneId, {
          key: scopedKey(SYSTEM_CALLER, `void:${r.reservationId}`),
          digest: digest({ op: 'void', reservationId: r.reservationId }),
          event: <MilestoneEvent>{
            type: 'VOID_RESERVATION',
            by: SYSTEM,
            at: this.o.now().toISOString(),
            reservationId: r.reservationId,
            reserved: r.amount,
            milestoneId: r.milestoneId,
            projectId: change.projectId,
            employerId: r.userId,
            freelancerId: change.freelancerId ?? '',
            currency: r.currency,
            amount,
            terms: termsFor(this.o.terms, r.currency, 0),
          },
        });
        released++;
        continue;
      }
      await this.funds.release(SYSTEM_CALLER, r.userId, {
        reservationId: r.reservationId,
        milestoneId: r.milestoneId,
        currency: r.currency,
        amount: r.amount,
        time: this.o.now().toISOString(),
      });
      released++;
    }
    return released;
  }
}
