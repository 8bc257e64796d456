import { describe, expect, it } from 'vitest';
import { DEFAULT_TERMS, feeOn, freelancerFeeFor } from './terms.js';

describe('fees', () => {
  it('is the percent rounded half up, at least the minimum', () => {
    expect(feeOn({ percent: '2.5', minimum: '0.50' }, 'USD', '10.00')).toBe('0.50');
    expect(feeOn({ percent: '2.5', minimum: '0.50' }, 'USD', '100.10')).toBe('2.50'); // 2.5025
    expect(feeOn({ percent: '2.5', minimum: '0.50' }, 'USD', '100.30')).toBe('2.51'); // 2.5075
    expect(feeOn({ percent: '3', minimum: '0' }, 'JPY', '1050')).toBe('32'); // 31.5
    expect(feeOn({ percent: '0', minimum: '0' }, 'BHD', '1.234')).toBe('0.000');
  });

  it('never takes more than the payout from the freelancer', () => {
    const terms = { ...DEFAULT_TERMS, freelancerFee: { percent: '10', minimum: '5.00' } };
    expect(freelancerFeeFor(terms, 'USD', '0', '0', '3.00')).toBe('3.00');
    // 3.00 was paid and all of it went in fees; 2.00 more of the 5.00 minimum is owed.
    expect(freelancerFeeFor(terms, 'USD', '3.00', '3.00', '40.00')).toBe('2.00');
    expect(freelancerFeeFor(terms, 'USD', '43.00', '5.00', '57.00')).toBe('5.00');
  });
});
