import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { failure, usd } from './helpers/client.js';
import { eventually, useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();

const review = (who: string, fields: object, k = key()) =>
  t.client.r('SubmitReview', who, { rating: 5, comment: 'good', idempotency_key: k, ...fields });

describe('reviews and reputation', () => {
  it('are earned by a released milestone: each party reviews the other once', async () => {
    const c = t.client;
    await deposit(c, 'emp-v', '30.00');
    const m = await funded(c, 'emp-v', 'fl-v', '10.00', 'proj-v');
    await funded(c, 'emp-v', 'fl-v', '5.00', 'proj-v');
    expect(await failure(review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v' }))).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      reason: 'NOTHING_RELEASED',
    });
    await c.m('ReleaseMilestone', 'emp-v', { milestone_id: m, idempotency_key: key() });
    await ledgerCaughtUp(t.engine);

    expect(await failure(review('stranger', { project_id: 'proj-v', reviewee_id: 'fl-v' }))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      reason: 'NOT_PARTY',
    });
    expect(await failure(review('emp-v', { project_id: 'proj-v', reviewee_id: 'emp-v' }))).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      reason: 'REVIEWEE_NOT_COUNTERPART',
    });
    expect(await failure(review('emp-v', { project_id: 'no-such-project', reviewee_id: 'fl-v' }))).toMatchObject({
      code: grpc.status.NOT_FOUND,
      reason: 'PROJECT_NOT_FOUND',
    });
    for (const rating of [0, 6]) {
      expect(await failure(review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v', rating }))).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        reason: 'RATING_INVALID',
      });
    }
    expect(await failure(review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v', comment: 'a\u0000b' }))).toMatchObject({
      reason: 'TEXT_INVALID',
    });

    const k = key();
    const first = await review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v', rating: 5, comment: 'on time' }, k);
    expect(first).toMatchObject({ project_id: 'proj-v', reviewer_id: 'emp-v', reviewee_id: 'fl-v', rating: 5, comment: 'on time' });
    expect(await review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v', rating: 5, comment: 'on time' }, k)).toMatchObject({
      rating: 5,
    });
    expect(await failure(review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v', rating: 1, comment: 'on time' }, k))).toMatchObject({
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    expect(await failure(review('emp-v', { project_id: 'proj-v', reviewee_id: 'fl-v', rating: 4 }))).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      reason: 'ALREADY_REVIEWED',
    });
    await review('fl-v', { project_id: 'proj-v', reviewee_id: 'emp-v', rating: 4, comment: 'clear brief' });

    await eventually(async () => {
      const list = await c.r('ListReviews', 'anyone', { user_id: 'fl-v' });
      expect(list.reviews).toHaveLength(1);
      expect(list.reviews[0]).toMatchObject({ reviewer_id: 'emp-v', rating: 5, comment: 'on time' });
      const rep = await c.r('GetReputation', 'anyone', { user_id: 'fl-v' });
      expect(rep).toMatchObject({
        user_id: 'fl-v',
        released_milestones: 1,
        earned: [usd('10.00')],
        review_count: 1,
        average_rating: 5,
        score: 3.3333,
      });
      const emp = await c.r('GetReputation', 'anyone', { user_id: 'emp-v' });
      expect(emp).toMatchObject({ released_milestones: 0, earned: [], review_count: 1, average_rating: 4 });
    });
  });

  it('concurrent reviews by one reviewer on one project: exactly one is recorded', async () => {
    const c = t.client;
    await deposit(c, 'emp-w', '10.00');
    const m = await funded(c, 'emp-w', 'fl-w', '10.00', 'proj-w');
    await c.m('ReleaseMilestone', 'emp-w', { milestone_id: m, idempotency_key: key() });
    await ledgerCaughtUp(t.engine);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => review('fl-w', { project_id: 'proj-w', reviewee_id: 'emp-w', rating: 1 + (i % 5) })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    await ledgerCaughtUp(t.engine);
    expect((await c.r('ListReviews', 'x', { user_id: 'emp-w' })).reviews).toHaveLength(1);
  });
});

describe('reputation cannot be farmed', () => {
  it('tiny milestones from sock-puppet employers, and many projects of one employer, do not move the score', async () => {
    const c = t.client;
    // One real project: paid 20.00, reviewed 3 stars.
    await deposit(c, 'emp-real', '20.00');
    const real = await funded(c, 'emp-real', 'fl-farm', '20.00', 'proj-real');
    await c.m('ReleaseMilestone', 'emp-real', { milestone_id: real, idempotency_key: key() });
    await ledgerCaughtUp(t.engine);
    await review('emp-real', { project_id: 'proj-real', reviewee_id: 'fl-farm', rating: 3 });
    await ledgerCaughtUp(t.engine);
    const before = await c.r('GetReputation', 'anyone', { user_id: 'fl-farm' });
    expect(before).toMatchObject({ released_milestones: 1, review_count: 1, average_rating: 3 });

    // Five sock-puppet employers, 0.01 each, five stars each.
    for (let i = 0; i < 5; i++) {
      const emp = `puppet-${i}`;
      await deposit(c, emp, '0.01');
      const m = await funded(c, emp, 'fl-farm', '0.01', `proj-puppet-${i}`);
      await c.m('ReleaseMilestone', emp, { milestone_id: m, idempotency_key: key() });
      await ledgerCaughtUp(t.engine);
      await review(emp, { project_id: `proj-puppet-${i}`, reviewee_id: 'fl-farm', rating: 5 });
    }
    // The real employer on three more projects of 6.00, five stars each: one reviewer, counted once (the newest review).
    await deposit(c, 'emp-real', '18.00');
    for (let i = 0; i < 3; i++) {
      const m = await funded(c, 'emp-real', 'fl-farm', '6.00', `proj-real-${i}`);
      await c.m('ReleaseMilestone', 'emp-real', { milestone_id: m, idempotency_key: key() });
      await ledgerCaughtUp(t.engine);
      await review('emp-real', { project_id: `proj-real-${i}`, reviewee_id: 'fl-farm', rating: 5 });
    }
    await ledgerCaughtUp(t.engine);
    const after = await c.r('GetReputation', 'anyone', { user_id: 'fl-farm' });
    // Milestones of 5.00 or more count (the default ESCROW_REPUTATION_MIN_PAID); one review per reviewer.
    expect(after).toMatchObject({ released_milestones: 4, review_count: 1, average_rating: 5 });
    expect(after.score).toBeCloseTo((5 * 3 + 5) / 6, 3);
    expect(after.earned).toEqual([usd('38.05')]);
  });
});

describe('ListReviews pages', () => {
  it('walks every review once, newest first, with a token bound to its user', async () => {
    const c = t.client;
    for (let i = 0; i < 5; i++) {
      const emp = `emp-pg${i}`;
      await deposit(c, emp, '2.00');
      const m = await funded(c, emp, 'fl-pg', '1.00', `proj-pg${i}`);
      await c.m('ReleaseMilestone', emp, { milestone_id: m, idempotency_key: key() });
      await ledgerCaughtUp(t.engine);
      await review(emp, { project_id: `proj-pg${i}`, reviewee_id: 'fl-pg', rating: 1 + (i % 5), comment: `r${i}` });
    }
    await eventually(async () => expect((await c.r('ListReviews', 'x', { user_id: 'fl-pg' })).reviews).toHaveLength(5));
    const seen: string[] = [];
    const times: number[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await c.r('ListReviews', 'x', { user_id: 'fl-pg', page_size: 2, page_token: token });
      for (const r of page.reviews) {
        seen.push(r.project_id);
        times.push(Number(r.created_at.seconds) * 1000 + Math.floor(r.created_at.nanos / 1e6));
      }
      token = page.next_page_token;
      pages++;
    } while (token && pages < 10);
    expect(pages).toBe(3);
    expect([...seen].sort()).toEqual(['proj-pg0', 'proj-pg1', 'proj-pg2', 'proj-pg3', 'proj-pg4']);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const first = await c.r('ListReviews', 'x', { user_id: 'fl-pg', page_size: 2 });
    const stolen = await failure(c.r('ListReviews', 'x', { user_id: 'fl-v', page_size: 2, page_token: first.next_page_token }));
    expect(stolen.reason).toBe('PAGE_TOKEN_INVALID');
    expect((await failure(c.r('ListReviews', 'x', { user_id: 'fl-pg', page_size: 201 }))).reason).toBe('PAGE_SIZE_INVALID');
  });
});
