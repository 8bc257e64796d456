import { Decimal } from 'decimal.js';
import { invariant } from '../errors.js';
import { format } from '../money.js';

/**
 * The money rules of the ledger, pure: which accounts each kind of money event moves, and
 * how the per-user balance projection changes. Every posting is balanced (its legs sum to zero).
 */

export type PostingKind = 'hold' | 'release' | 'return' | 'deposit' | 'withdrawal';
export type PostingResult = 'ok' | 'insufficient_funds' | 'reference_conflict';

interface IntentBase {
  eventId: string;
  seq: number;
  currency: string;
  /** Positive decimal string. */
  amount: string;
}

export interface MilestoneIntent extends IntentBase {
  kind: 'hold' | 'release' | 'return';
  milestoneId: string;
  employerId: string;
  freelancerId: string;
}

export interface AccountIntent extends IntentBase {
  kind: 'deposit' | 'withdrawal';
  userId: string;
  reference: string;
}

export type Intent = MilestoneIntent | AccountIntent;

export interface AccountRef {
  id: string;
  kind: 'available' | 'escrow' | 'revenue' | 'world';
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

/** The scoped key of an external reference (see external_references in the migrations). */
export function referenceKey(intent: AccountIntent): string {
  return intent.kind === 'deposit' ? `deposit:${intent.reference}` : `withdrawal:${intent.userId}:${intent.reference}`;
}

/** The account that must hold enough for the intent to be applied, if any. */
export function fundedFrom(intent: Intent): AccountRef | null {
  if (intent.kind === 'hold') return available(intent.employerId, intent.currency);
  if (intent.kind === 'withdrawal') return available(intent.userId, intent.currency);
  return null;
}

/** The legs of an applied intent. The sum is asserted to be zero. */
export function legsOf(intent: Intent): Leg[] {
  const a = intent.amount;
  const neg = format(intent.currency, new Decimal(a).neg());
  let legs: Leg[];
  switch (intent.kind) {
    case 'hold':
      legs = [
        { account: available(intent.employerId, intent.currency), amount: neg },
        { account: escrow(intent.milestoneId, intent.currency), amount: a },
      ];
      break;
    case 'release':
      legs = [
        { account: escrow(intent.milestoneId, intent.currency), amount: neg },
        { account: available(intent.freelancerId, intent.currency), amount: a },
      ];
      break;
    case 'return':
      legs = [
        { account: escrow(intent.milestoneId, intent.currency), amount: neg },
        { account: available(intent.employerId, intent.currency), amount: a },
      ];
      break;
    case 'deposit':
      legs = [
        { account: world(intent.currency), amount: neg },
        { account: available(intent.userId, intent.currency), amount: a },
      ];
      break;
    case 'withdrawal':
      legs = [
        { account: available(intent.userId, intent.currency), amount: neg },
        { account: world(intent.currency), amount: a },
      ];
      break;
  }
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
}

/**
 * How an applied intent changes the projection: held is the employer's money in escrow,
 * incoming the freelancer's view of the same money.
 */
export function balanceEffects(intent: Intent): BalanceEffect[] {
  const a = intent.amount;
  const neg = format(intent.currency, new Decimal(a).neg());
  const fx = (userId: string, availableDelta: string, held: string, incoming: string): BalanceEffect => ({
    userId,
    currency: intent.currency,
    available: availableDelta,
    held,
    incoming,
  });
  switch (intent.kind) {
    case 'hold':
      return [fx(intent.employerId, neg, a, '0'), fx(intent.freelancerId, '0', '0', a)];
    case 'release':
      return [fx(intent.employerId, '0', neg, '0'), fx(intent.freelancerId, a, '0', neg)];
    case 'return':
      return [fx(intent.employerId, a, neg, '0'), fx(intent.freelancerId, '0', '0', neg)];
    case 'deposit':
      return [fx(intent.userId, a, '0', '0')];
    case 'withdrawal':
      return [fx(intent.userId, neg, '0', '0')];
  }
}
