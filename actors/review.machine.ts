import { assign, setup } from 'xstate';
import type { CommandBase, DecisionSlots, Rejection } from './decision.js';
import type { ReviewEmitted } from './events.js';

/**
 * The review machine: one review per reviewer per project (one entity each). A review is
 * earned by paying through milestones: the reviewer and the reviewee must be the project's
 * employer and freelancer, and at least one milestone of the project must have paid the
 * freelancer (released, partially released, or a dispute share).
 */

export interface ReviewContext extends DecisionSlots<ReviewEmitted> {
  id: string;
  projectId: string;
  reviewerId: string;
  revieweeId: string;
  rating: number;
  comment: string;
  createdAt: string;
}

export type ReviewEvent = CommandBase & {
  type: 'SUBMIT';
  projectId: string;
  revieweeId: string;
  rating: number;
  comment: string;
  /** Facts read by the caller of the machine: the project's parties ('' if no such project), and whether it paid. */
  employerId: string;
  freelancerId: string;
  paid: boolean;
};

export const initialReviewContext: ReviewContext = {
  id: '',
  projectId: '',
  reviewerId: '',
  revieweeId: '',
  rating: 0,
  comment: '',
  createdAt: '',
  rejection: null,
  emitted: null,
};

const reject = (code: Rejection['code'], reason: string, message: string): Rejection => ({ code, reason, message });
const counterpart = (e: ReviewEvent) => (e.by.id === e.employerId ? e.freelancerId : e.by.id === e.freelancerId ? e.employerId : null);

export const reviewMachine = setup({
  types: { context: {} as ReviewContext, events: {} as ReviewEvent },
  guards: {
    noProject: ({ event }) => event.employerId === '',
    notParty: ({ event }) => counterpart(event) === null,
    notCounterpart: ({ event }) => counterpart(event) !== event.revieweeId,
    notPaid: ({ event }) => !event.paid,
  },
  actions: {
    rejectNoProject: assign({ rejection: () => reject('NOT_FOUND', 'PROJECT_NOT_FOUND', 'no such project') }),
    rejectNotParty: assign({
      rejection: () => reject('PERMISSION_DENIED', 'NOT_PARTY', "only the project's employer and freelancer review each other"),
    }),
    rejectNotCounterpart: assign({
      rejection: () => reject('INVALID_ARGUMENT', 'REVIEWEE_NOT_COUNTERPART', 'the reviewee must be the other party of the project'),
    }),
    rejectNotPaid: assign({
      rejection: () => reject('FAILED_PRECONDITION', 'NOTHING_RELEASED', 'no milestone of the project has paid the freelancer yet'),
    }),
    rejectAlreadyReviewed: assign({
      rejection: () => reject('FAILED_PRECONDITION', 'ALREADY_REVIEWED', 'the caller has reviewed this project already'),
    }),
    submit: assign(({ event }) => ({
      projectId: event.projectId,
      reviewerId: event.by.id,
      revieweeId: event.revieweeId,
      rating: event.rating,
      comment: event.comment,
      createdAt: event.at,
      emitted: { type: 'submitted', data: { projectId: event.projectId, revieweeId: event.revieweeId, rating: event.rating } },
    })),
  },
}).createMachine({
  id: 'review',
  initial: 'new',
  context: initialReviewContext,
  states: {
    new: {
      on: {
        SUBMIT: [
          { guard: 'noProject', actions: 'rejectNoProject' },
          { guard: 'notParty', actions: 'rejectNotParty' },
          { guard: 'notCounterpart', actions: 'rejectNotCounterpart' },
          { guard: 'notPaid', actions: 'rejectNotPaid' },
          { target: 'submitted', actions: 'submit' },
        ],
      },
    },
    submitted: { on: { SUBMIT: { actions: 'rejectAlreadyReviewed' } } },
  },
});

/**
 * The ranking score: a Bayesian average that starts every user at PRIOR_MEAN as if they had
 * PRIOR_REVIEWS reviews of it, so one review moves the score a little and many reviews
 * decide it: score = (PRIOR_REVIEWS * PRIOR_MEAN + sum of ratings) / (PRIOR_REVIEWS + count).
 */
export const PRIOR_MEAN = 3;
export const PRIOR_REVIEWS = 5;
export function reputationScore(count: number, ratingSum: number): number {
  return Math.round(((PRIOR_REVIEWS * PRIOR_MEAN + ratingSum) / (PRIOR_REVIEWS + count)) * 10_000) / 10_000;
}
