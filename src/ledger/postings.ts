import { Decimal } from 'decimal.js';
import { invariant } from '../errors.js';
import { add, format } from '../../actors/money.js';

/**
 * The money rules of the ledger, pure: which accounts each kind of money event moves, and
 * how the per-user balance projection changes. Every posting is balanced (its legs sum to zero).
 */

import type { PostingKind, PostingResult } from '../events/outcome.js';

export type { PostingKind, PostingResult };

interface IntentBase {
  eventId: string;
  seq: number;
  currency: string;
  /** Positive decimal string. */
  amount: string;
  /**
   * A debit an account actor decided (a reservation, an arbitration fee, a withdrawal): the
   * ledger posts it and counts it in decided_debits; being short of funds is a broken
   * invariant, never a refusal. Debits of an earlier version (undecided) may still be refused.
   */
  decided?: boolean;
  /**
   * A debit of what the ledger itself put in the account (a clear takes a payout from pending):
   * being short is a broken invariant, as for a decided debit, but it is not a decision of the
   * account actor and is not counted in decided_debits.
   */
  covered?: boolean;
}

export interface MilestoneIntent extends IntentBase {
  /**
   * hold: `amount` from the employer into escrow, plus `fee` to the platform.
   * release: `amount` out of escrow to the freelancer, `fee` of it to the platform.
   * return: `amount` out of escrow back to the employer.
   * settle: all of `amount` out of escrow, `freelancerAmount` to the freelancer (less `fee`),
   *   the rest to the employer; an arbitration fee held goes back to its payer or to the platform.
   * fee_hold: the arbitration fee `amount` from the payer's available balance, held for the milestone.
   * With `reservationId`, a hold takes `amount` plus `fee` from that reservation instead of from available.
   */
  kind: 'hold' | 'release' | 'return' | 'settle' | 'fee_hold';
  milestoneId: string;
  employerId: string;
  freelancerId: string;
  fee: string;
  freelancerAmount: string;
  /** fee_hold (of an earlier version): who pays the arbitration fee; '' for the other kinds. */
  payerId: string;
  /** settle: the arbitration fees held for the dispute (none, the escalating party's, or both parties'), each back to its payer or to the platform. */
  arbitrationFees: ArbitrationFeeLeg[];
  /** hold: the reservation it consumes; '' when held from available (an earlier version). */
  reservationId: string;
  /** release and settle: with a clearing period, when the freelancer's share clears; until then it is pending. '' = none. */
  clearsAt: string;
}

/** An arbitration fee a settlement ends: held in `arbitration:<milestone>:<payer>`, back to the payer if refunded, else to the platform. */
export interface ArbitrationFeeLeg {
  payerId: string;
  amount: string;
  refunded: boolean;
}

export interface AccountIntent extends IntentBase {
  /** reserve: `amount` from available into the reservation `reservationId` (the event's own id); unreserve: back. clear: `amount` from pending to available. */
  kind: 'deposit' | 'withdrawal' | 'reserve' | 'unreserve' | 'clear';
  userId: string;
  /** deposit and withdrawal: the external reference; '' otherwise. */
  reference: string;
  reservationId?: string;
  milestoneId?: string;
  /** reserve: the employer fee inside `amount`, shown with the entry. */
  fee?: string;
  /** clear: the payout event it clears. */
  causationId?: string;
}

export type Intent = MilestoneIntent | AccountIntent;

export interface AccountRef {
  id: string;
  kind: 'available' | 'escrow' | 'arbitration' | 'reservation' | 'pending' | 'revenue' | 'world';
  owner: string;
  currency: string;
}

export interface Leg {
  account: AccountRef;
  /** Signed: what the account's balance changes by. */
  amount: string;
}

export const available = (userId: string, currency: string): AccountRef => ({
  id: `available:${currency}:${userId}`,
  kind: 'available',
  owner: userId,
  currency,
});
export const escrow = (milestoneId: string, currency: string): AccountRef => ({
  id: `escrow:${milestoneId}`,
  kind: 'escrow',
  owner: milestoneId,
  currency,
});
export const world = (currency: string): AccountRef => ({ id: `world:${currency}`, kind: 'world', owner: 'world', currency });
/** The platform's fee income, one per currency. */
export const revenue = (currency: string): AccountRef => ({ id: `revenue:${currency}`, kind: 'revenue', owner: 'platform', currency });
/** A reservation funding one milestone, until the milestone consumes it or the sweep gives it back (owned by the employer). */
export const reservation = (reservationId: string, userId: string, currency: string): AccountRef => ({
  id: `reservation:${reservationId}`,
  kind: 'reservation',
  owner: userId,
  currency,
});
/** An arbitration fee held for one milestone's dispute, one account per paying party (its owner). */
export const arbitration = (milestoneId: string, payerId: string, currency: string): AccountRef => ({
  id: `arbitration:${milestoneId}:${payerId}`,
  kind: 'arbitration',
  owner: payerId,
  currency,
});

/** A user's paid money that has not cleared yet (a clearing period): not spendable until a clear moves it to available. */
export const pending = (userId: string, currency: string): AccountRef => ({
  id: `pending:${currency}:${userId}`,
  kind: 'pending',
  owner: userId,
  currency,
});

/** Where a payout to the freelancer goes: pending until it clears, with a clearing period; else available. */
const payee = (intent: MilestoneIntent): AccountRef =>
  intent.clearsAt !== '' ? pending(intent.freelancerId, intent.currency) : available(intent.freelancerId, intent.currency);

/** The scoped key of an external reference (see external_references in the migrations). */
export function referenceKey(intent: AccountIntent): string {
  return intent.kind === 'deposit' ? `deposit:${intent.reference}` : `withdrawal:${intent.userId}:${intent.reference}`;
}

/** The available account a decided debit counts against (decided_debits), or null for other intents. */
export function decidedDebitOf(intent: Intent): AccountRef | null {
  if (!intent.decided) return null;
  return fundedFrom(intent)?.account ?? null;
}

/** The account that must hold enough for the intent to be applied, and how much, if any. */
export function fundedFrom(intent: Intent): { account: AccountRef; amount: string } | null {
  if (intent.kind === 'hold' && intent.reservationId !== '') return null;
  if (intent.kind === 'reserve') return { account: available(intent.userId, intent.currency), amount: intent.amount };
  if (intent.kind === 'hold')
    return { account: available(intent.employerId, intent.currency), amount: add(intent.currency, intent.amount, intent.fee) };
  if (intent.kind === 'fee_hold') return { account: available(intent.payerId, intent.currency), amount: intent.amount };
  if (intent.kind === 'withdrawal') return { account: available(intent.userId, intent.currency), amount: intent.amount };
  // A clear can only move what is pending: a clear with nothing to clear is refused, never paid.
  if (intent.kind === 'clear') return { account: pending(intent.userId, intent.currency), amount: intent.amount };
  return null;
}

/** The legs of an applied intent, one per account (zero legs dropped). The sum is asserted to be zero. */
export function legsOf(intent: Intent): Leg[] {
  const c = intent.currency;
  const a = intent.amount;
  const raw: [AccountRef, Decimal.Value][] = [];
  switch (intent.kind) {
    case 'hold': {
      const from = intent.reservationId !== '' ? reservation(intent.reservationId, intent.employerId, c) : available(intent.employerId, c);
      raw.push([from, new Decimal(a).plus(intent.fee).neg()], [escrow(intent.milestoneId, c), a], [revenue(c), intent.fee]);
      break;
    }
    case 'reserve':
    case 'unreserve': {
      invariant(intent.reservationId, `${intent.kind} ${intent.eventId} names no reservation`);
      const held = reservation(intent.reservationId, intent.userId, c);
      if (intent.kind === 'reserve') raw.push([available(intent.userId, c), new Decimal(a).neg()], [held, a]);
      else raw.push([held, new Decimal(a).neg()], [available(intent.userId, c), a]);
      break;
    }
    case 'release':
      raw.push(
        [escrow(intent.milestoneId, c), new Decimal(a).neg()],
        [payee(intent), new Decimal(a).minus(intent.fee)],
        [revenue(c), intent.fee],
      );
      break;
    case 'return':
      raw.push([escrow(intent.milestoneId, c), new Decimal(a).neg()], [available(intent.employerId, c), a]);
      break;
    case 'settle': {
      const toEmployer = new Decimal(a).minus(intent.freelancerAmount);
      invariant(
        toEmployer.gte(0) && new Decimal(intent.fee).lte(intent.freelancerAmount),
        `settlement ${intent.eventId} splits more than it holds`,
      );
      raw.push(
        [escrow(intent.milestoneId, c), new Decimal(a).neg()],
        [payee(intent), new Decimal(intent.freelancerAmount).minus(intent.fee)],
        [available(intent.employerId, c), toEmployer],
        [revenue(c), intent.fee],
      );
      for (const f of intent.arbitrationFees) {
        raw.push(
          [arbitration(intent.milestoneId, f.payerId, c), new Decimal(f.amount).neg()],
          [f.refunded ? available(f.payerId, c) : revenue(c), f.amount],
        );
      }
      break;
    }
    case 'fee_hold':
      raw.push([available(intent.payerId, c), new Decimal(a).neg()], [arbitration(intent.milestoneId, intent.payerId, c), a]);
      break;
    case 'deposit':
      raw.push([world(c), new Decimal(a).neg()], [available(intent.userId, c), a]);
      break;
    case 'clear':
      raw.push([pending(intent.userId, c), new Decimal(a).neg()], [available(intent.userId, c), a]);
      break;
    case 'withdrawal':
      raw.push([available(intent.userId, c), new Decimal(a).neg()], [world(c), a]);
      break;
  }
  // One leg per account: a refund to a party that also gets a share is one entry.
  const merged = new Map<string, { account: AccountRef; sum: Decimal }>();
  for (const [account, amount] of raw) {
    const m = merged.get(account.id) ?? { account, sum: new Decimal(0) };
    merged.set(account.id, { account, sum: m.sum.plus(amount) });
  }
  const legs = [...merged.values()].filter((m) => !m.sum.isZero()).map((m) => ({ account: m.account, amount: format(c, m.sum) }));
  const sum = legs.reduce((s, l) => s.plus(l.amount), new Decimal(0));
  invariant(sum.isZero(), `posting ${intent.eventId} is unbalanced by ${sum.toString()}`);
  invariant(new Decimal(a).gt(0), `posting ${intent.eventId} has a non-positive amount ${a}`);
  return legs;
}

/** A change of the user_balances projection. */
export interface BalanceEffect {
  userId: string;
  currency: string;
  available: string;
  held: string;
  incoming: string;
  /** Paid to the user, not cleared yet (a clearing period). */
  pending: string;
}

/**
 * How an applied intent changes the projection: held is the employer's money in escrow,
 * incoming the freelancer's view of the same money, pending what was paid and has not cleared.
 */
export function balanceEffects(intent: Intent): BalanceEffect[] {
  const c = intent.currency;
  const a = intent.amount;
  const fx = (
    userId: string,
    availableDelta: Decimal.Value,
    held: Decimal.Value,
    incoming: Decimal.Value,
    pendingDelta: Decimal.Value = 0,
  ): BalanceEffect => ({
    userId,
    currency: c,
    available: format(c, availableDelta),
    held: format(c, held),
    incoming: format(c, incoming),
    pending: format(c, pendingDelta),
  });
  // A payout to the freelancer: to available, or to pending until it clears.
  const paid = (i: MilestoneIntent, net: Decimal.Value, incoming: Decimal.Value) =>
    i.clearsAt !== '' ? fx(i.freelancerId, 0, 0, incoming, net) : fx(i.freelancerId, net, 0, incoming);
  const neg = new Decimal(a).neg();
  switch (intent.kind) {
    case 'hold':
      // From a reservation the amount and fee already count as held: only the fee leaves.
      if (intent.reservationId !== '')
        return [fx(intent.employerId, 0, new Decimal(intent.fee).neg(), 0), fx(intent.freelancerId, 0, 0, a)];
      return [fx(intent.employerId, neg.minus(intent.fee), a, 0), fx(intent.freelancerId, 0, 0, a)];
    case 'reserve':
      return [fx(intent.userId, neg, a, 0)];
    case 'unreserve':
      return [fx(intent.userId, a, neg, 0)];
    case 'release':
      return [fx(intent.employerId, 0, neg, 0), paid(intent, new Decimal(a).minus(intent.fee), neg)];
    case 'return':
      return [fx(intent.employerId, a, neg, 0), fx(intent.freelancerId, 0, 0, neg)];
    case 'settle': {
      const effects = [
        fx(intent.employerId, new Decimal(a).minus(intent.freelancerAmount), neg, 0),
        paid(intent, new Decimal(intent.freelancerAmount).minus(intent.fee), neg),
      ];
      // A fee held counts as its payer's held money until the dispute ends.
      for (const f of intent.arbitrationFees) effects.push(fx(f.payerId, f.refunded ? f.amount : 0, new Decimal(f.amount).neg(), 0));
      return effects;
    }
    case 'fee_hold':
      return [fx(intent.payerId, neg, a, 0)];
    case 'deposit':
      return [fx(intent.userId, a, 0, 0)];
    case 'withdrawal':
      return [fx(intent.userId, neg, 0, 0)];
    case 'clear':
      return [fx(intent.userId, a, 0, 0, neg)];
  }
}
