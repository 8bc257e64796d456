import { PAYMENTS_ROLE, type Caller } from './decision.js';

/**
 * Access rules for balances, which have no state machine: money enters only through the
 * payments service, leaves only by its owner, and balances are private to their owner.
 */

export function mayDeposit(caller: Caller): boolean {
  return caller.roles.includes(PAYMENTS_ROLE);
}

/** Withdrawals always act on the caller's own balance, so any authenticated user may ask. */
export function mayWithdraw(_caller: Caller): boolean {
  return true;
}

export function mayReadBalance(caller: Caller, userId: string): boolean {
  return caller.id === userId || caller.roles.includes(PAYMENTS_ROLE);
}
