import { Decimal } from 'decimal.js';
import { add, isZero, sub, zero } from '../money.js';
import { feeOn, freelancerFeeFor, type Terms } from '../terms.js';
import type { Dispute, MilestoneContext, MilestoneEvent } from './types.js';

/** What a milestone's money steps compute: a release's amount, fees on payouts, a dispute's settlement, the context a create or a request opens. */

/** The amount a RELEASE moves: the requested one, or everything held. */
export function releaseAmount(c: MilestoneContext, e: Extract<MilestoneEvent, { type: 'RELEASE' }>): string {
  return e.amount === '' ? c.held : e.amount;
}

/** What a payout of `amount` to the freelancer costs in freelancer fees (see terms.ts). */
export function payoutFee(c: MilestoneContext, amount: string): string {
  return freelancerFeeFor(c.terms, c.currency, c.released, c.freelancerFee, amount);
}

/** With a clearing period, when a payout of `amount` less `fee` made at `at` clears: `{ clearsAt }`, else nothing (withdrawable at once). */
export function clearing(c: MilestoneContext, amount: string, fee: string, at: string): { clearsAt?: string } {
  const ms = c.terms.clearingMs ?? 0;
  if (ms <= 0 || !new Decimal(amount).minus(fee).gt(0)) return {};
  return { clearsAt: new Date(Date.parse(at) + ms).toISOString() };
}

/** The dispute of a milestone in a dispute state: its absence there is a broken invariant. */
export function disputeOf(c: MilestoneContext): Dispute {
  if (!c.dispute) throw new Error(`milestone ${c.id} is in a dispute state without a dispute`);
  return c.dispute;
}

/**
 * Ends a dispute with `freelancerAmount` for the freelancer and the rest of what is held back
 * to the employer, in one step. Each arbitration fee held (the escalating party's, and the
 * other party's under terms that ask both) goes back to its payer if that payer won (got more
 * than half of the claim, as filer; or kept the filer to at most half, as respondent), else to
 * the platform.
 */
export function settlement(
  c: MilestoneContext,
  freelancerAmount: string,
  outcome: Exclude<Dispute['outcome'], '' | 'withdrawn'>,
  at: string,
): Partial<MilestoneContext> {
  const d = disputeOf(c);
  const employerAmount = sub(c.currency, c.held, freelancerAmount);
  const fee = payoutFee(c, freelancerAmount);
  const filerShare = d.filerId === c.freelancerId ? freelancerAmount : employerAmount;
  const filerWon = new Decimal(filerShare).gt(new Decimal(d.claim).dividedBy(2));
  const winnerId = filerWon ? d.filerId : d.respondentId;
  const escalated = d.escalatedBy !== '' && !isZero(d.arbitrationFee);
  const second = secondFee(d);
  return {
    held: zero(c.currency),
    released: add(c.currency, c.released, freelancerAmount),
    returned: add(c.currency, c.returned, employerAmount),
    freelancerFee: add(c.currency, c.freelancerFee, fee),
    dueAt: '',
    dueKind: '',
    dispute: { ...d, outcome, freelancerAmount },
    updatedAt: at,
    emitted: {
      type: 'resolved',
      data: {
        amount: c.held,
        freelancerAmount,
        employerAmount,
        fee,
        outcome,
        arbitrationFee: escalated ? d.arbitrationFee : zero(c.currency),
        escalatorId: escalated ? d.escalatedBy : '',
        arbitrationFeeRefunded: escalated && winnerId === d.escalatedBy,
        ...(second
          ? {
              secondFeePayerId: second.payerId,
              secondArbitrationFee: second.amount,
              secondArbitrationFeeRefunded: winnerId === second.payerId,
            }
          : {}),
        ...clearing(c, freelancerAmount, fee, at),
      },
    },
  };
}

/** When either party may escalate: the negotiation window from the opening, not counting the time the dispute was frozen. */
export function escalationPossibleAt(c: MilestoneContext, d: Dispute): string {
  return new Date(Date.parse(d.openedAt) + c.terms.negotiationMs + (d.frozenMs ?? 0)).toISOString();
}

/** The freelancer's amount when the filer gets its claim (the deadline, or the respondent conceding): the rest of what is held goes to the other party. */
export function claimGranted(c: MilestoneContext): string {
  const d = disputeOf(c);
  return d.filerId === c.freelancerId ? d.claim : sub(c.currency, c.held, d.claim);
}

/** Under terms that ask both parties, who pays the second arbitration fee: the party that did not escalate. */
export function secondFeePayer(d: Dispute): string {
  return d.escalatedBy === d.filerId ? d.respondentId : d.filerId;
}

/** The other party's arbitration fee, while it is being charged or once paid: who pays it and how much; null when none. */
export function secondFee(d: Dispute): { payerId: string; amount: string } | null {
  return d.secondFee && !isZero(d.secondFee) ? { payerId: secondFeePayer(d), amount: d.secondFee } : null;
}

/**
 * The freelancer's amount when the other party did not pay its arbitration fee in time: the
 * escalating party wins by default. As filer it gets its claim; as respondent it keeps the
 * filer from getting anything of it.
 */
export function feeDefault(c: MilestoneContext): string {
  const d = disputeOf(c);
  if (d.escalatedBy === d.filerId) return claimGranted(c);
  return d.filerId === c.freelancerId ? zero(c.currency) : c.held;
}

/** The context of a milestone that comes into being, by a create or a request: nothing held yet. */
export function opened(
  e: {
    milestoneId: string;
    projectId: string;
    description: string;
    milestoneReason: string;
    currency: string;
    amount: string;
    at: string;
    terms: Terms;
  },
  parties: { employerId: string; freelancerId: string },
  emittedType: 'created' | 'requested',
): Partial<MilestoneContext> & { employerFee: string } {
  const z = zero(e.currency);
  const employerFee = feeOn(e.terms.employerFee, e.currency, e.amount);
  return {
    terms: e.terms,
    employerFee,
    freelancerFee: z,
    id: e.milestoneId,
    projectId: e.projectId,
    ...parties,
    description: e.description,
    milestoneReason: e.milestoneReason,
    currency: e.currency,
    amount: e.amount,
    held: z,
    released: z,
    returned: z,
    createdAt: e.at,
    updatedAt: e.at,
    // A create asks the ledger for the hold (amount plus the employer fee); a request does not yet.
    emitted:
      emittedType === 'created'
        ? { type: 'created', data: { amount: e.amount, employerFee } }
        : { type: 'requested', data: { amount: e.amount } },
  };
}
