import { initialReviewContext, reputationScore, reviewMachine, type ReviewContext, type ReviewEvent } from '../../actors/review.machine.js';
import { initialProjectContext, type ProjectContext } from '../../actors/project.machine.js';
import type { EventLog } from '../events/log.js';
import { digest, reviewIdFor, scopedKey } from '../ids.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import type { EntityEventData, EntityKind, Persisted } from '../runtime/entity.js';
import { Registry } from '../runtime/registry.js';
import type { CallContext } from './milestones.js';

export const REVIEW: EntityKind<ReviewContext> = {
  entity: 'review',
  machine: reviewMachine,
  initial: { state: 'new', context: initialReviewContext },
  finalStates: new Set(['submitted']),
};

export interface Reputation {
  userId: string;
  releasedMilestones: number;
  earned: { currency: string; amount: string }[];
  reviewCount: number;
  averageRating: number;
  score: number;
}

/**
 * Reviews and reputation. SubmitReview goes through a review actor (one per reviewer and
 * project) like any command; the review machine decides. Lists and reputation come from the
 * read model the worker projects.
 */
export class ReviewApp {
  readonly reviews: Registry<ReviewContext>;

  constructor(
    private readonly o: {
      log: EventLog;
      pool: Pool;
      mailboxMax: number;
      actorsMax: number;
      actorIdleMs: number;
      now: () => Date;
      /** What a project must have paid (major units) for its milestones and reviews to count toward reputation. */
      reputationMinPaid: string;
    },
  ) {
    this.reviews = new Registry({ log: o.log, mailboxMax: o.mailboxMax, actorsMax: o.actorsMax, actorIdleMs: o.actorIdleMs, kind: REVIEW });
  }

  async submit(
    ctx: CallContext,
    input: { projectId: string; revieweeId: string; rating: number; comment: string; key: string },
  ): Promise<Persisted<ReviewContext>> {
    // The facts the machine needs: the project's parties (from the log) and whether it paid (from the read model).
    const project = await this.o.log.readLast<EntityEventData<ProjectContext>>(this.o.log.names.project(input.projectId));
    // Events leave out the fields at their initial value.
    const parties = project ? { ...initialProjectContext, ...project.event.data.state.context } : undefined;
    const paid = parties ? await read.projectHasPaid(this.o.pool, input.projectId) : false;
    const content = {
      op: 'submit_review',
      projectId: input.projectId,
      revieweeId: input.revieweeId,
      rating: input.rating,
      comment: input.comment,
    };
    const event: ReviewEvent = {
      type: 'SUBMIT',
      by: ctx.caller,
      at: this.o.now().toISOString(),
      projectId: input.projectId,
      revieweeId: input.revieweeId,
      rating: input.rating,
      comment: input.comment,
      employerId: parties?.employerId ?? '',
      freelancerId: parties?.freelancerId ?? '',
      paid,
    };
    return this.reviews.send(reviewIdFor(input.projectId, ctx.caller.id), {
      key: scopedKey(ctx.caller.id, input.key),
      digest: digest(content),
      deadline: ctx.deadline,
      event: { ...event },
    });
  }

  /** A page of the reviews about the user, newest first. */
  list(userId: string, pageSize: number, after: Parameters<typeof read.reviewsOf>[3]): Promise<read.ReviewRow[]> {
    return read.reviewsOf(this.o.pool, userId, pageSize, after);
  }

  async reputation(userId: string): Promise<Reputation> {
    const r = await read.reputationOf(this.o.pool, userId, this.o.reputationMinPaid);
    return {
      userId,
      releasedMilestones: r.releasedMilestones,
      earned: r.earned,
      reviewCount: r.reviewCount,
      averageRating: r.reviewCount === 0 ? 0 : Math.round((r.ratingSum / r.reviewCount) * 10_000) / 10_000,
      score: reputationScore(r.reviewCount, r.ratingSum),
    };
  }

  close(): void {
    this.reviews.close();
  }
}
