import type * as grpc from '@grpc/grpc-js';
import type { ReviewApp } from '../app/reviews.js';
import { InvalidArgument } from '../errors.js';
import { money, timestamp } from './convert.js';
import { unary, type HandlerDeps } from './handlers.js';
import { isTime } from './page-token.js';
import * as v from './validate.js';

/** A request as @grpc/proto-loader decodes it: every field is checked before use (./validate.ts). */
type Req = Record<string, unknown>;

export function reviewService(deps: HandlerDeps, app: ReviewApp): grpc.UntypedServiceImplementation {
  return {
    SubmitReview: unary(deps, 'SubmitReview', async (r: Req, ctx) => {
      const rating = r.rating;
      if (typeof rating !== 'number' || !Number.isInteger(rating) || rating < 1 || rating > 5)
        throw new InvalidArgument('RATING_INVALID', 'rating must be 1..5', { field: 'rating' });
      const s = await app.submit(ctx, {
        projectId: v.requireId(r.project_id, 'project_id'),
        revieweeId: v.requirePartyId(r.reviewee_id, 'reviewee_id'),
        rating,
        comment: v.optionalText(r.comment, 'comment'),
        key: v.requireKey(r.idempotency_key),
      });
      const c = s.context;
      return {
        project_id: c.projectId,
        reviewer_id: c.reviewerId,
        reviewee_id: c.revieweeId,
        rating: c.rating,
        comment: c.comment,
        created_at: timestamp(c.createdAt),
      };
    }),
    ListReviews: unary(deps, 'ListReviews', async (r: Req) => {
      const userId = v.requireId(r.user_id, 'user_id');
      // Unset: 200, what one call returned before paging.
      const limit = r.page_size === undefined || r.page_size === 0 ? v.PAGE_SIZE_MAX : v.pageSize(r.page_size);
      const scope = ['reviews', userId].join('\u0000');
      const at = deps.pages.open(scope, r.page_token, (p) => isTime(p.c) && typeof p.p === 'string' && typeof p.r === 'string');
      const after = at?.c && at.p !== undefined && at.r !== undefined ? { createdAt: at.c, projectId: at.p, reviewerId: at.r } : null;
      const rows = await app.list(userId, limit, after);
      const last = rows.at(-1);
      return {
        next_page_token:
          rows.length === limit && last
            ? deps.pages.issue(scope, { c: last.created_at.toISOString(), p: last.project_id, r: last.reviewer_id })
            : '',
        reviews: rows.map((x) => ({
          project_id: x.project_id,
          reviewer_id: x.reviewer_id,
          reviewee_id: x.reviewee_id,
          rating: x.rating,
          comment: x.comment,
          created_at: timestamp(x.created_at),
        })),
      };
    }),
    GetReputation: unary(deps, 'GetReputation', async (r: Req) => {
      const rep = await app.reputation(v.requireId(r.user_id, 'user_id'));
      return {
        user_id: rep.userId,
        released_milestones: rep.releasedMilestones,
        earned: rep.earned.map((e) => money(e.currency, e.amount)),
        review_count: rep.reviewCount,
        average_rating: rep.averageRating,
        score: rep.score,
      };
    }),
  };
}
