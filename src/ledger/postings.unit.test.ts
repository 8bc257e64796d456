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
  arbitrationFee: '0',
  arbitrationFeeRefunded: false,
  reservationId: '',
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
      payerId: 'fl',
      arbitrationFee: '5.00',
      arbitrationFeeRefunded: true,
    };
    expect(legs(i)).toEqual({
      'escrow:m1': '-100.00',
      'available:USD:fl': '68.00',
      'available:USD:emp': '30.00',
      'revenue:USD': '7.00',
      'arbitration:m1:fl': '-5.00',
    });
    const fx = balanceEffects(i);
    expect(fx).toContainEqual({ userId: 'fl', currency: 'USD', available: '5.00', held: '-5.00', incoming: '0.00' });
  });

  it('a settlement whose escalating party lost pays the fee to revenue; a split of nothing to the freelancer works', () => {
    const i: MilestoneIntent = { ...base, kind: 'settle', freelancerAmount: '0.00', payerId: 'emp', arbitrationFee: '5.00' };
    expect(legs(i)).toEqual({
      'escrow:m1': '-100.00',
      'available:USD:emp': '100.00',
      'revenue:USD': '5.00',
      'arbitration:m1:emp': '-5.00',
    });
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
