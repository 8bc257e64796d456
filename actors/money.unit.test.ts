import { describe, expect, it } from 'vitest';
import { MoneyError, parsePositiveAmount } from './money.js';

function reason(currency: string, amount: string): string {
  try {
    parsePositiveAmount(currency, amount);
    return 'ok';
  } catch (err) {
    return err instanceof MoneyError ? err.reason : 'THREW';
  }
}

describe('money parsing', () => {
  it.each([
    ['USD', '10', 'ok'],
    ['USD', '10.5', 'ok'],
    ['USD', '10.55', 'ok'],
    ['USD', '0', 'AMOUNT_NOT_POSITIVE'],
    ['USD', '0.00', 'AMOUNT_NOT_POSITIVE'],
    ['USD', '-1', 'AMOUNT_INVALID'],
    ['USD', '1.234', 'AMOUNT_SCALE'],
    ['JPY', '1.5', 'AMOUNT_SCALE'],
    ['JPY', '15', 'ok'],
    ['BHD', '1.234', 'ok'],
    ['BHD', '1.2345', 'AMOUNT_SCALE'],
    ['USD', 'abc', 'AMOUNT_INVALID'],
    ['USD', '1e3', 'AMOUNT_INVALID'],
    ['USD', '', 'AMOUNT_REQUIRED'],
    ['USD', ' 1', 'AMOUNT_INVALID'],
    ['USD', '01', 'AMOUNT_INVALID'],
    ['USD', '1.', 'AMOUNT_INVALID'],
    ['USD', '.5', 'AMOUNT_INVALID'],
    ['USD', '+1', 'AMOUNT_INVALID'],
    ['USD', '١٢', 'AMOUNT_INVALID'],
    ['USD', '1000000000000', 'ok'],
    ['USD', '1000000000000.01', 'AMOUNT_TOO_LARGE'],
    ['USD', '9'.repeat(40), 'AMOUNT_TOO_LARGE'],
    ['USD', '9'.repeat(65), 'AMOUNT_INVALID'],
    ['XXX', '1', 'CURRENCY_UNKNOWN'],
    ['usd', '1', 'CURRENCY_UNKNOWN'],
    ['', '1', 'CURRENCY_UNKNOWN'],
  ])('%s %s -> %s', (currency, amount, expected) => {
    expect(reason(currency, amount)).toBe(expected);
  });

  it('normalizes to the currency scale', () => {
    expect(parsePositiveAmount('USD', '10.5')).toEqual({ currency: 'USD', amount: '10.50' });
    expect(parsePositiveAmount('JPY', '7')).toEqual({ currency: 'JPY', amount: '7' });
  });
});
