import { describe, expect, it } from 'vitest';
import { balanceEffects, fundedFrom, legsOf, type MilestoneIntent } from './postings.js';

const base: MilestoneIntent = {
  kind: 'hold',
  eventId: 'e1',
  seq: 1,
  milestoneId: 'm1',
  employerId: 'emp',
  freelancerId: 'fl',
  currency: 'USD',
  amount: '100.00',
  fee: '0.00',
  freelancerAmount: '0',
  payerId: '',
  arbitrationFees: [],
  reservationId: '',
  clearsAt: '',
};
const legs = (i: MilestoneIntent) => Object.fromEntries(legsOf(i).map((l) => [l.account.id, l.amount]));

describe('postings with fees and splits', () => {
  it('a hold takes the employer fee on top, and needs amount + fee available', () => {
    const i = { ...base, fee: '2.00' };
    expect(legs(i)).toEqual({ 'available:USD:emp': '-102.00', 'escrow:m1': '100.00', 'revenue:USD': '2.00' });
    expect(fundedFrom(i)?.amount).toBe('102.00');
  });

  it('a release without a fee has no revenue leg', () => {
    expect(legs({ ...base, kind: 'release' })).toEqual({ 'escrow:m1': '-100.00', 'available:USD:fl': '100.00' });
  });

  it('a settlement splits what is held and one entry per account takes a refunded arbitration fee', () => {
    const i: MilestoneIntent = {
      ...base,
      kind: 'settle',
      freelancerAmount: '70.00',
      fee: '7.00',
      arbitrationFees: [{ payerId: 'fl', amount: '5.00', refunded: true }],
    };
    expect(legs(i)).toEqual({
      'escrow:m1': '-100.00',
      'available:USD:fl': '68.00',
      'available:USD:emp': '30.00',
      'revenue:USD': '7.00',
      'arbitration:m1:fl': '-5.00',
    });
    const fx = balanceEffects(i);
    expect(fx).toContainEqual({ userId: 'fl', currency: 'USD', available: '5.00', held: '-5.00', incoming: '0.00', pending: '0.00' });
  });

  it('with a clearing period a payout goes to pending, and a clear moves only what is pending to available', () => {
    const released: MilestoneIntent = { ...base, kind: 'release', fee: '10.00', clearsAt: '2026-12-08T00:00:00.000Z' };
    expect(legs(released)).toEqual({ 'escrow:m1': '-100.00', 'pending:USD:fl': '90.00', 'revenue:USD': '10.00' });
    expect(balanceEffects(released)).toContainEqual({
      userId: 'fl',
      currency: 'USD',
      available: '0.00',
      held: '0.00',
      incoming: '-100.00',
      pending: '90.00',
    });
    const settled: MilestoneIntent = {
      ...base,
      kind: 'settle',
      freelancerAmount: '40.00',
      fee: '4.00',
      clearsAt: '2026-12-08T00:00:00.000Z',
    };
    expect(legs(settled)).toEqual({
      'escrow:m1': '-100.00',
      'pending:USD:fl': '36.00',
      'available:USD:emp': '60.00',
      'revenue:USD': '4.00',
    });
    const clear = {
      kind: 'clear' as const,
      eventId: 'c1',
      seq: 2,
      userId: 'fl',
      currency: 'USD',
      amount: '90.00',
      reference: '',
      causationId: 'e1',
    };
    expect(Object.fromEntries(legsOf(clear).map((l) => [l.account.id, l.amount]))).toEqual({
      'pending:USD:fl': '-90.00',
      'available:USD:fl': '90.00',
    });
    // Only from pending: a clear of more than is pending is refused by the ledger, never paid.
    expect(fundedFrom(clear)).toEqual({ account: expect.objectContaining({ id: 'pending:USD:fl' }), amount: '90.00' });
    expect(balanceEffects(clear)).toEqual([
      { userId: 'fl', currency: 'USD', available: '90.00', held: '0.00', incoming: '0.00', pending: '-90.00' },
    ]);
  });

  it('a settlement whose escalating party lost pays the fee to revenue; a split of nothing to the freelancer works', () => {
    const i: MilestoneIntent = {
      ...base,
      kind: 'settle',
      freelancerAmount: '0.00',
      arbitrationFees: [{ payerId: 'emp', amount: '5.00', refunded: false }],
    };
    expect(legs(i)).toEqual({
      'escrow:m1': '-100.00',
      'available:USD:emp': '100.00',
      'revenue:USD': '5.00',
      'arbitration:m1:emp': '-5.00',
    });
  });

  it("with both parties' fees held, the winner's goes back and the loser's to revenue, each from its own account", () => {
    const i: MilestoneIntent = {
      ...base,
      kind: 'settle',
      freelancerAmount: '100.00',
      fee: '10.00',
      arbitrationFees: [
        { payerId: 'emp', amount: '5.00', refunded: false },
        { payerId: 'fl', amount: '5.00', refunded: true },
      ],
    };
    expect(legs(i)).toEqual({
      'escrow:m1': '-100.00',
      'available:USD:fl': '95.00',
      'revenue:USD': '15.00',
      'arbitration:m1:emp': '-5.00',
      'arbitration:m1:fl': '-5.00',
    });
    expect(balanceEffects(i)).toEqual(
      expect.arrayContaining([
        { userId: 'emp', currency: 'USD', available: '0.00', held: '-5.00', incoming: '0.00', pending: '0.00' },
        { userId: 'fl', currency: 'USD', available: '5.00', held: '-5.00', incoming: '0.00', pending: '0.00' },
      ]),
    );
  });

  it('refuses a settlement that splits more than it holds', () => {
    expect(() => legsOf({ ...base, kind: 'settle', freelancerAmount: '100.01' })).toThrow(/splits more than it holds/);
    expect(() => legsOf({ ...base, kind: 'settle', freelancerAmount: '1.00', fee: '2.00' })).toThrow(/splits more than it holds/);
  });

  it('a fee hold moves the arbitration fee from the payer into the milestone arbitration account', () => {
    const i: MilestoneIntent = { ...base, kind: 'fee_hold', amount: '5.00', payerId: 'fl' };
    expect(legs(i)).toEqual({ 'available:USD:fl': '-5.00', 'arbitration:m1:fl': '5.00' });
    expect(fundedFrom(i)).toMatchObject({ account: { id: 'available:USD:fl' }, amount: '5.00' });
  });
});
