import * as core from '../actors/money.js';
import { InvalidArgument } from './errors.js';

/**
 * Money at the service's edge: the rules of actors/money.ts, with what they refuse as
 * INVALID_ARGUMENT and its stable reason (AMOUNT_REQUIRED, AMOUNT_INVALID, AMOUNT_SCALE,
 * AMOUNT_NOT_POSITIVE, AMOUNT_TOO_LARGE, CURRENCY_UNKNOWN). Arithmetic is imported from
 * actors/money.ts directly.
 */

export type { Money } from '../actors/money.js';

function refused<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof core.MoneyError) throw new InvalidArgument(err.reason, err.message);
    throw err;
  }
}

export function minorUnits(currency: string): number {
  return refused(() => core.minorUnits(currency));
}

export function parsePositiveAmount(currency: string, amount: string, field = 'amount'): core.Money {
  return refused(() => core.parsePositiveAmount(currency, amount, field));
}

export function parseAmount(currency: string, amount: string, field: string, o: { allowZero: boolean }): core.Money {
  return refused(() => core.parseAmount(currency, amount, field, o));
}
