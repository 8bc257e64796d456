import { mayDebit, type LedgerView } from '../../actors/account.rules.js';
import type { AccountEmitted, AccountEventType } from '../../actors/events.js';
import { Aborted, ResourceExhausted } from '../errors.js';
import { cloudEvent, eventType } from '../events/cloudevent.js';
import { WrongLastSequence, type EventLog } from '../events/log.js';
import { metrics } from '../metrics.js';
import { clearIdFor, feeReservationIdFor, reservationReleaseIdFor } from '../ids.js';
import { SYSTEM_CALLER } from '../../actors/decision.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import { add } from '../../actors/money.js';
import { ignoreFailure } from '../log.js';

/**
 * The data of every event on an account's subject (<ns>.account.<user>): who asked, what
 * changed (typed by event type, actors/events.ts), and the actor's decision state after it,
 * so an account actor loads from the last event alone however long the account lives.
 */
export interface AccountEventData {
  by: string;
  change: AccountEmitted['data'];
  state: AccountState;
}

export interface AccountState {
  userId: string;
  /** Per currency, the running total of every debit this account's actors decided. */
  debited: Record<string, string>;
}

/** One decision to append on an account: a debit is decided on the conservative view, a credit always goes in. */
export interface AccountOperation {
  type: AccountEventType;
  /** The event id: deterministic, so a retry is the same event (and a repeat inside the duplicate window is not stored again). */
  id: string;
  by: string;
  currency: string;
  /** Taken from available (debits) or given to it (credits). */
  amount: string;
  debit: boolean;
  change: AccountEmitted['data'];
  time: string;
  /** A debit whose refusal must be recorded (so that everyone deciding it agrees): appended under the same id when refused. */
  refusal?: { type: AccountEventType; change: AccountEmitted['data'] };
  /**
   * Decided once even past the log's duplicate window (ESCROW_DUPLICATE_WINDOW_MS), within
   * which a repeat of the id is dropped by the log: an operation that may be asked again much
   * later (an arbitration fee whose milestone never learned the answer, a withdrawal a payments
   * service retries with its reference) is first looked for among the ledger's postings and on
   * the subject past the ledger's cursor, and a decision found stands.
   * (A refusal the ledger has passed leaves no posting: asked again, the fee is decided anew,
   * which can charge it but never twice, and never refuses one that was charged.)
   */
  lookUpFirst?: boolean;
}

/** appended: this call decided it; duplicate: decided before (the log holds the event); insufficient: refused, nothing appended. */
export type AccountDecision = 'appended' | 'duplicate' | 'insufficient';

/**
 * Appends that lose the optimistic race on an account (another gateway appended first) are
 * decided again after a short random pause, so two gateways spending one account take turns
 * instead of colliding again; after this many, ABORTED.
 */
const CONFLICT_RETRIES_MAX = 40;
/** How long a debit that looks uncovered waits for the ledger to post credits already appended, before it is refused. */
const CREDIT_WAIT_MS = 2_000;

/**
 * One actor per user account: it serializes the account's decisions and appends each with
 * the subject's expected last sequence, so two gateways deciding for one account at once
 * cannot both spend the same money (the loser reloads and decides again). It decides on the
 * ledger's posted figures (read once per currency, and again before refusing) and its own
 * running total of debits, never waiting for the ledger.
 */
class AccountActor {
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;
  /** Subject sequence of the last event; null when the state must be read from the log. */
  private seq: number | null = null;
  private debited: Record<string, string> = {};
  private readonly views = new Map<string, LedgerView>();
  lastUsed = Date.now();

  constructor(
    private readonly userId: string,
    private readonly o: FundsOptions,
  ) {}

  get busy(): boolean {
    return this.queued > 0;
  }

  decide(op: AccountOperation): Promise<AccountDecision> {
    // Funding commands of one hot account wait here, not in the milestone mailboxes; the bound is wider for that.
    if (this.queued >= this.o.mailboxMax) {
      return Promise.reject(new ResourceExhausted('MAILBOX_FULL', `too many operations queued for the account of ${this.userId}`));
    }
    this.queued++;
    this.lastUsed = Date.now();
    const run = this.tail.then(() => this.apply(op));
    // The caller gets run's failure; the queue only needs to go on after it.
    this.tail = run.catch(ignoreFailure('an account operation (its caller has the error)'));
    return run.finally(() => {
      this.queued--;
      this.lastUsed = Date.now();
    });
  }

  private async apply(op: AccountOperation): Promise<AccountDecision> {
    const subject = this.o.log.names.account(this.userId);
    for (let attempt = 0; ; attempt++) {
      if (this.seq === null) await this.load(subject);
      const earlier = op.lookUpFirst ? await this.decidedBefore(subject, op) : null;
      if (earlier) return earlier;
      const before = this.debited[op.currency] ?? '0';
      const covered = !op.debit || (await this.covers(op.currency, before, op.amount));
      const outcome = covered ? { type: op.type, change: op.change } : op.refusal;
      if (!outcome) return 'insufficient';
      const debited = op.debit && covered ? { ...this.debited, [op.currency]: add(op.currency, before, op.amount) } : this.debited;
      const event = cloudEvent<AccountEventData>({
        id: op.id,
        source: this.o.log.names.source,
        type: eventType('account', outcome.type),
        subject: this.userId,
        time: op.time,
        data: { by: op.by, change: outcome.change, state: { userId: this.userId, debited } },
      });
      try {
        const ack = await this.o.log.append(subject, event, this.seq);
        if (ack.duplicate) {
          // Decided before (a retry, or another gateway): the log holds that decision and its total.
          this.seq = null;
          if (!op.refusal) return 'duplicate';
          const original = await this.o.log.readAt<AccountEventData>(ack.seq);
          return original?.event.type === eventType('account', op.refusal.type) ? 'insufficient' : 'duplicate';
        }
        this.seq = ack.seq;
        this.debited = debited;
        return covered ? 'appended' : 'insufficient';
      } catch (err) {
        this.seq = null;
        if (err instanceof WrongLastSequence) metrics.appendConflicts.inc({ entity: 'account' });
        if (err instanceof WrongLastSequence && attempt < CONFLICT_RETRIES_MAX) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(20, 1 + attempt)));
          continue;
        }
        if (err instanceof WrongLastSequence) throw new Aborted('CONCURRENT_MODIFICATION', 'the account kept changing; retry');
        throw err;
      }
    }
  }

  /** The decision an operation already has in the log, whatever the duplicate window: posted by the ledger, or on the subject past its cursor; null when none. */
  private async decidedBefore(subject: string, op: AccountOperation): Promise<AccountDecision | null> {
    // The cursor first: an event the ledger posts between the two reads is then found posted, never missed by both.
    const cursor = await read.ledgerCursor(this.o.pool);
    if (await read.isPosted(this.o.pool, op.id)) return 'duplicate';
    for await (const e of this.o.log.readSubject(subject, cursor, (this.seq ?? 0) + 1)) {
      if (e.event.id !== op.id) continue;
      return op.refusal && e.event.type === eventType('account', op.refusal.type) ? 'insufficient' : 'duplicate';
    }
    return null;
  }

  /** Whether the account covers a debit: on the view held, else on a fresh one (credits posted since). */
  private async covers(currency: string, debited: string, amount: string): Promise<boolean> {
    const held = this.views.get(currency);
    if (held && mayDebit(currency, held, debited, amount)) return true;
    let fresh = await read.ledgerView(this.o.pool, this.userId, currency);
    if (!mayDebit(currency, fresh, debited, amount)) {
      // Credits answered before this debit (a release, a deposit) may not be posted yet: before
      // refusing, wait (bounded) until the ledger has applied everything appended so far.
      const tail = await this.o.log.tailSeq();
      const until = Date.now() + CREDIT_WAIT_MS;
      while (fresh.cursor < tail && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        fresh = await read.ledgerView(this.o.pool, this.userId, currency);
      }
    }
    this.views.set(currency, fresh);
    return mayDebit(currency, fresh, debited, amount);
  }

  private async load(subject: string): Promise<void> {
    // A message someone put on the subject by hand is passed over: it is no decision of ours.
    const { last, tailSeq } = await this.o.log.readLastTrusted<Partial<AccountEventData>>(subject);
    // Events of an earlier version carry no state: their debits were decided by the ledger.
    this.debited = { ...(last?.event.data.state?.debited ?? {}) };
    this.seq = tailSeq;
  }
}

export interface FundsOptions {
  log: EventLog;
  pool: Pool;
  mailboxMax: number;
  actorsMax: number;
  actorIdleMs: number;
}

/**
 * Every debit of a user's available balance is decided here, by the user's account actor:
 * milestone funding (a reservation the milestone then consumes), arbitration fees and
 * withdrawals. The ledger worker posts what was decided and never refuses it for funds.
 */
export class Funds {
  private readonly actors = new Map<string, AccountActor>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly o: FundsOptions) {
    this.sweeper = setInterval(() => this.evict(Date.now() - o.actorIdleMs), Math.max(10, Math.floor(o.actorIdleMs / 2)));
    this.sweeper.unref();
  }

  decide(userId: string, op: AccountOperation): Promise<AccountDecision> {
    let actor = this.actors.get(userId);
    if (actor) this.actors.delete(userId);
    else actor = new AccountActor(userId, this.o);
    this.actors.set(userId, actor);
    if (this.actors.size > this.o.actorsMax) this.evict(Infinity);
    return actor.decide(op);
  }

  /** Reserves the funding of a milestone (amount plus employer fee) under `reservationId`; false if the account cannot cover it. */
  async reserve(
    by: string,
    employerId: string,
    r: {
      reservationId: string;
      milestoneId: string;
      projectId: string;
      freelancerId: string;
      currency: string;
      amount: string;
      fee: string;
      time: string;
    },
  ): Promise<boolean> {
    const total = add(r.currency, r.amount, r.fee);
    const decision = await this.decide(employerId, {
      type: 'funds_reserved',
      id: r.reservationId,
      by,
      currency: r.currency,
      amount: total,
      debit: true,
      change: {
        currency: r.currency,
        amount: total,
        fee: r.fee,
        milestoneId: r.milestoneId,
        projectId: r.projectId,
        freelancerId: r.freelancerId,
      },
      time: r.time,
    });
    return decision !== 'insufficient';
  }

  /** Reserves the arbitration fee the milestone event `causationId` (an escalation, or the other party's fee) asks of `payerId`; false if the account cannot cover it. */
  async reserveFee(
    payerId: string,
    f: { milestoneId: string; causationId: string; currency: string; amount: string; time: string },
  ): Promise<boolean> {
    const change = { currency: f.currency, amount: f.amount, milestoneId: f.milestoneId, causationId: f.causationId };
    const decision = await this.decide(payerId, {
      refusal: { type: 'fee_refused', change },
      lookUpFirst: true,
      type: 'fee_reserved',
      id: feeReservationIdFor(f.causationId),
      by: payerId,
      currency: f.currency,
      amount: f.amount,
      debit: true,
      change,
      time: f.time,
    });
    return decision !== 'insufficient';
  }

  /** Gives a reservation no milestone will consume back to its owner's available balance. */
  async release(
    by: string,
    userId: string,
    r: { reservationId: string; milestoneId: string; currency: string; amount: string; time: string },
  ): Promise<void> {
    await this.decide(userId, {
      type: 'reservation_released',
      id: reservationReleaseIdFor(r.reservationId),
      by,
      currency: r.currency,
      amount: r.amount,
      debit: false,
      change: { currency: r.currency, amount: r.amount, milestoneId: r.milestoneId, reservationId: r.reservationId },
      time: r.time,
    });
  }

  /** Clears a payout that waited in the user's pending account: pending to available (a credit; the ledger posts only what is pending). */
  async clear(
    userId: string,
    c: { causationId: string; milestoneId: string; currency: string; amount: string; time: string },
  ): Promise<void> {
    await this.decide(userId, {
      type: 'funds_cleared',
      id: clearIdFor(c.causationId),
      by: SYSTEM_CALLER,
      currency: c.currency,
      amount: c.amount,
      debit: false,
      change: { currency: c.currency, amount: c.amount, milestoneId: c.milestoneId, causationId: c.causationId },
      time: c.time,
    });
  }

  private evict(cutoff: number): void {
    for (const [id, actor] of this.actors) {
      if (cutoff === Infinity && this.actors.size <= this.o.actorsMax) return;
      if (!actor.busy && actor.lastUsed < cutoff) this.actors.delete(id);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.actors.clear();
  }
}
