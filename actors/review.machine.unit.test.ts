import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { initialReviewContext, reputationScore, reviewMachine, type ReviewEvent } from './review.machine.js';

const AT = '2026-12-01T00:00:00.000Z';
const submit = (by: string, over: Partial<ReviewEvent> = {}): ReviewEvent => ({
  type: 'SUBMIT',
  by: { id: by, roles: [] },
  at: AT,
  projectId: 'p1',
  revieweeId: by === 'emp' ? 'fl' : 'emp',
  rating: 5,
  comment: '',
  employerId: 'emp',
  freelancerId: 'fl',
  paid: true,
  ...over,
});
const run = (e: ReviewEvent, state = 'new') => {
  const d = decide(reviewMachine, { state, context: initialReviewContext }, e);
  return d.kind === 'rejected' ? d.rejection.reason : d.kind === 'accepted' ? d.next.state : 'unchanged';
};

describe('review machine', () => {
  it('lets the two parties of a paid project review each other, once', () => {
    expect(run(submit('emp'))).toBe('submitted');
    expect(run(submit('fl'))).toBe('submitted');
    expect(run(submit('emp'), 'submitted')).toBe('ALREADY_REVIEWED');
  });
  it('refuses everyone and everything else', () => {
    expect(run(submit('stranger', { revieweeId: 'fl' }))).toBe('NOT_PARTY');
    expect(run(submit('emp', { revieweeId: 'emp' }))).toBe('REVIEWEE_NOT_COUNTERPART');
    expect(run(submit('emp', { revieweeId: 'someone' }))).toBe('REVIEWEE_NOT_COUNTERPART');
    expect(run(submit('emp', { paid: false }))).toBe('NOTHING_RELEASED');
    expect(run(submit('emp', { employerId: '', freelancerId: '' }))).toBe('PROJECT_NOT_FOUND');
  });
  it('scores so that one review does not dominate', () => {
    expect(reputationScore(0, 0)).toBe(3);
    expect(reputationScore(1, 5)).toBe(3.3333);
    expect(reputationScore(1, 1)).toBe(2.6667);
    expect(reputationScore(20, 100)).toBe(4.6);
  });
});
