import { PAYMENTS_ROLE, type Caller } from './decision.js';
import { cmp, sub } from './money.js';

/**
 * Access rules for balances, which have no state machine: money enters only through the
 * payments service, leaves only by its owner (a withdrawal always acts on the caller's own
 * balance, so any authenticated user may ask), and balances are private to their owner.
 */

export function mayDeposit(caller: Caller): boolean {
  return caller.roles.includes(PAYMENTS_ROLE);
}

export function mayReadBalance(caller: Caller, userId: string): boolean {
  return caller.id === userId || caller.roles.includes(PAYMENTS_ROLE);
}

/**
 * What the ledger has posted for one available account, as read from it in one row: the
 * balance, and the sum of the debits decided by account actors that it has applied (or
 * skipped as repeats). See `spendable`.
 */
export interface LedgerView {
  available: string;
  decidedPosted: string;
}

/**
 * The conservative balance an account actor decides debits on: what the ledger has posted,
 * less the debits this account's actors decided that the ledger has not reached yet
 * (`debited`, the actor's running total of all its debits, minus what the ledger counted of
 * them). Credits in flight do not count until posted. Posting a decided debit moves the
 * balance and the counted total alike, so the figure holds for a view read at any moment;
 * a view read long ago only undercounts credits (refresh it before refusing).
 */
export function spendable(currency: string, view: LedgerView, debited: string): string {
  return sub(currency, view.available, sub(currency, debited, view.decidedPosted));
}

/** Whether a debit of `amount` may be decided: never below zero on the conservative view. */
export function mayDebit(currency: string, view: LedgerView, debited: string, amount: string): boolean {
  return cmp(spendable(currency, view, debited), amount) >= 0;
}
