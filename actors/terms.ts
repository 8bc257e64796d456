import { Decimal } from 'decimal.js';
import { format, zero } from './money.js';

/**
 * The terms a milestone is made under: fees, the arbitration fee, the dispute windows and the
 * optional review window of auto-release. They are copied from the configuration into the
 * milestone when it is created (or requested), so a later change of the configuration never
 * changes what an existing contract costs or how long its parties have.
 */

export interface FeeRule {
  /** Percent of the amount, a decimal string such as "2.5". */
  readonly percent: string;
  /** The least fee charged when the percent gives less, in the milestone's currency. */
  readonly minimum: string;
}

export interface Terms {
  /** Charged on top of the amount when the milestone is funded. */
  readonly employerFee: FeeRule;
  /** Deducted from what the freelancer receives (release or a dispute share). */
  readonly freelancerFee: FeeRule;
  /** Charged to the party that escalates a dispute to arbitration (and, see below, to the other party); refunded to the winner. */
  readonly arbitrationFee: string;
  /**
   * With a value above 0, arbitration needs both parties' fees: once the escalating party paid,
   * the other has this long to pay its own, and a party that does not pay loses the dispute by
   * default. 0 or absent (terms made before it existed): only the escalating party pays.
   */
  readonly arbitrationFeeDeadlineMs?: number;
  /** How long the respondent of a dispute has to answer: freelancer / employer respondent. */
  readonly responseMsFreelancer: number;
  readonly responseMsEmployer: number;
  /** How long the parties negotiate before either may escalate. */
  readonly negotiationMs: number;
  /** After a release request, the employer's window to release or dispute; 0 = no auto-release. */
  readonly reviewWindowMs: number;
  /**
   * How long money paid to the freelancer stays pending before it can be withdrawn (a release,
   * an auto-release, a dispute share); 0 = withdrawable at once. Absent in the terms of
   * milestones made before clearing existed: 0.
   */
  readonly clearingMs?: number;
}

export const NO_FEE: FeeRule = { percent: '0', minimum: '0' };

export const DAY_MS = 86_400_000;

/** Terms with no fees and the default windows (4 / 14 days to answer, 3 to negotiate). */
export const DEFAULT_TERMS: Terms = {
  employerFee: NO_FEE,
  freelancerFee: NO_FEE,
  arbitrationFee: '0',
  responseMsFreelancer: 4 * DAY_MS,
  responseMsEmployer: 14 * DAY_MS,
  negotiationMs: 3 * DAY_MS,
  reviewWindowMs: 0,
};

/** A fee by one rule: the percent (rounded half up to the currency's minor unit), at least the minimum. */
export function feeOn(rule: FeeRule, currency: string, amount: string): string {
  const base = new Decimal(amount);
  if (base.lte(0)) return zero(currency);
  const pct = base.times(rule.percent).dividedBy(100);
  const fee = Decimal.max(new Decimal(format(currency, pct.toDecimalPlaces(scaleOf(currency), Decimal.ROUND_HALF_UP))), rule.minimum);
  return format(currency, fee);
}

/**
 * The freelancer fee of one payout. The fee is a function of everything the freelancer has
 * received from the milestone, so paying in parts costs what paying at once costs: the fee on
 * the new total minus the fees already charged, never more than the payout itself.
 */
export function freelancerFeeFor(terms: Terms, currency: string, paidBefore: string, chargedBefore: string, payout: string): string {
  const total = new Decimal(paidBefore).plus(payout);
  const owed = Decimal.min(new Decimal(feeOn(terms.freelancerFee, currency, total.toString())), total).minus(chargedBefore);
  return format(currency, Decimal.max(0, Decimal.min(owed, payout)));
}

function scaleOf(currency: string): number {
  return zero(currency).split('.')[1]?.length ?? 0;
}

/** What the configuration says about terms: a fee schedule per currency and the dispute windows. */
export interface TermsPolicy {
  readonly fees: Readonly<Record<string, { employer: FeeRule; freelancer: FeeRule; arbitration: string }>>;
  readonly responseMsFreelancer: number;
  readonly responseMsEmployer: number;
  readonly negotiationMs: number;
  /** ESCROW_CLEARING_PERIOD: how long payouts to freelancers stay pending (0 = none). */
  readonly clearingMs?: number;
  /** ESCROW_ARBITRATION_FEE_DEADLINE: the other party's time to pay its arbitration fee (0 = only the escalating party pays). */
  readonly arbitrationFeeDeadlineMs?: number;
}

export const DEFAULT_POLICY: TermsPolicy = {
  fees: {},
  responseMsFreelancer: DEFAULT_TERMS.responseMsFreelancer,
  responseMsEmployer: DEFAULT_TERMS.responseMsEmployer,
  negotiationMs: DEFAULT_TERMS.negotiationMs,
  clearingMs: 0,
};

/** The terms of a new milestone in `currency`: no fees for a currency the schedule does not name. */
export function termsFor(policy: TermsPolicy, currency: string, reviewWindowMs: number): Terms {
  const fees = policy.fees[currency];
  return {
    employerFee: fees?.employer ?? NO_FEE,
    freelancerFee: fees?.freelancer ?? NO_FEE,
    arbitrationFee: fees?.arbitration ?? '0',
    responseMsFreelancer: policy.responseMsFreelancer,
    responseMsEmployer: policy.responseMsEmployer,
    negotiationMs: policy.negotiationMs,
    reviewWindowMs,
    // Named only when set, so terms under a policy without clearing stay what they were.
    ...(policy.clearingMs ? { clearingMs: policy.clearingMs } : {}),
    ...(policy.arbitrationFeeDeadlineMs ? { arbitrationFeeDeadlineMs: policy.arbitrationFeeDeadlineMs } : {}),
  };
}
