import { Decimal } from 'decimal.js';

/**
 * Money is a decimal string plus an ISO 4217 currency. The currency's minor unit bounds the
 * scale. All arithmetic goes through decimal.js; a JavaScript number never holds an amount.
 * Pure, like the rest of actors/: input it refuses throws MoneyError with a stable reason,
 * which the service turns into INVALID_ARGUMENT (src/money.ts, src/gateway/handlers.ts).
 */

export type MoneyReason =
  'CURRENCY_UNKNOWN' | 'AMOUNT_REQUIRED' | 'AMOUNT_INVALID' | 'AMOUNT_SCALE' | 'AMOUNT_NOT_POSITIVE' | 'AMOUNT_TOO_LARGE';

/** An amount or currency the rules refuse, with its stable reason. */
export class MoneyError extends Error {
  constructor(
    readonly reason: MoneyReason,
    message: string,
  ) {
    super(message);
    this.name = 'MoneyError';
  }
}

// Decimal.js is configured once for the whole process: 40 significant digits is far more
// than MAX_AMOUNT at the largest scale needs, and rounding never happens on valid input.
Decimal.set({ precision: 40, rounding: Decimal.ROUND_DOWN, toExpNeg: -40, toExpPos: 40 });

/** Minor units (digits after the decimal point) of the ISO 4217 currencies we accept. */
export const CURRENCY_MINOR_UNITS: Readonly<Record<string, number>> = Object.freeze({
  USD: 2,
  EUR: 2,
  GBP: 2,
  AUD: 2,
  CAD: 2,
  NZD: 2,
  CHF: 2,
  SEK: 2,
  NOK: 2,
  DKK: 2,
  PLN: 2,
  CZK: 2,
  HUF: 2,
  RON: 2,
  BGN: 2,
  TRY: 2,
  INR: 2,
  PKR: 2,
  BDT: 2,
  LKR: 2,
  NPR: 2,
  PHP: 2,
  IDR: 2,
  MYR: 2,
  SGD: 2,
  HKD: 2,
  CNY: 2,
  TWD: 2,
  THB: 2,
  ZAR: 2,
  NGN: 2,
  KES: 2,
  EGP: 2,
  MXN: 2,
  BRL: 2,
  ARS: 2,
  COP: 2,
  PEN: 2,
  UAH: 2,
  AED: 2,
  SAR: 2,
  ILS: 2,
  MAD: 2,
  JPY: 0,
  KRW: 0,
  VND: 0,
  CLP: 0,
  ISK: 0,
  UGX: 0,
  XOF: 0,
  XAF: 0,
  BHD: 3,
  KWD: 3,
  OMR: 3,
  JOD: 3,
  TND: 3,
  LYD: 3,
  IQD: 3,
});

/** The largest amount accepted in one request, in major units (one trillion). */
export const MAX_AMOUNT = new Decimal('1000000000000');

// Plain decimal notation only: no sign, no exponent, no leading zeros, no whitespace.
const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const AMOUNT_MAX_LENGTH = 64;
const CURRENCY_PATTERN = /^[A-Z]{3}$/;

export interface Money {
  readonly currency: string;
  /** Canonical decimal string at the currency's scale, e.g. "10.50" for USD. */
  readonly amount: string;
}

export function minorUnits(currency: string): number {
  const units = CURRENCY_PATTERN.test(currency) ? CURRENCY_MINOR_UNITS[currency] : undefined;
  if (units === undefined) {
    throw new MoneyError('CURRENCY_UNKNOWN', `currency "${currency}" is not a supported ISO 4217 code`);
  }
  return units;
}

/**
 * Parses a positive amount as sent by a client. Throws MoneyError with a stable reason:
 * AMOUNT_REQUIRED, AMOUNT_INVALID (not plain decimal notation), AMOUNT_SCALE (more digits than
 * the currency allows), AMOUNT_NOT_POSITIVE, AMOUNT_TOO_LARGE, CURRENCY_UNKNOWN.
 */
export function parsePositiveAmount(currency: string, amount: string, field = 'amount'): Money {
  return parseAmount(currency, amount, field, { allowZero: false });
}

/** As parsePositiveAmount; with `allowZero`, "0" is accepted (a settlement that gives one party nothing). */
export function parseAmount(currency: string, amount: string, field: string, o: { allowZero: boolean }): Money {
  const scale = minorUnits(currency);
  if (amount === '') throw new MoneyError('AMOUNT_REQUIRED', `${field} is required`);
  if (amount.length > AMOUNT_MAX_LENGTH || !AMOUNT_PATTERN.test(amount)) {
    throw new MoneyError('AMOUNT_INVALID', `${field} must be a plain decimal string such as "10.50"`);
  }
  const dot = amount.indexOf('.');
  if (dot >= 0 && amount.length - dot - 1 > scale) {
    throw new MoneyError('AMOUNT_SCALE', `${field} has more than ${scale} decimal places for ${currency}`);
  }
  const value = new Decimal(amount);
  if (o.allowZero ? value.lt(0) : value.lte(0)) throw new MoneyError('AMOUNT_NOT_POSITIVE', `${field} must be greater than zero`);
  if (value.gt(MAX_AMOUNT)) throw new MoneyError('AMOUNT_TOO_LARGE', `${field} exceeds ${MAX_AMOUNT.toFixed(0)}`);
  return { currency, amount: value.toFixed(scale) };
}

/** Formats any decimal (already validated) at the currency's scale. */
export function format(currency: string, value: Decimal.Value): string {
  return new Decimal(value).toFixed(minorUnits(currency));
}

export function zero(currency: string): string {
  return format(currency, 0);
}

export function add(currency: string, a: string, b: string): string {
  return format(currency, new Decimal(a).plus(b));
}

export function sub(currency: string, a: string, b: string): string {
  return format(currency, new Decimal(a).minus(b));
}

export function cmp(a: string, b: string): number {
  return new Decimal(a).comparedTo(b);
}

export function isZero(a: string): boolean {
  return new Decimal(a).isZero();
}

export { Decimal };
