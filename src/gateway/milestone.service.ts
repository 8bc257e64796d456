import * as grpc from '@grpc/grpc-js';
import type { MilestoneContext } from '../../actors/milestone.machine.js';
import { FINAL_STATES } from '../../actors/milestone.machine.js';
import type { MilestoneApp } from '../app/milestones.js';
import { InvalidArgument, Unavailable } from '../errors.js';
import { VERSION_HEADER } from '../events/log.js';
import { SIGNATURE_HEADER } from '../events/signing.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import type { Persisted } from '../runtime/entity.js';
import { milestoneMessage, milestoneRowMessage, projectMessage } from './convert.js';
import { serverStream, unary, type HandlerDeps } from './handlers.js';
import { isTime, isUuid } from './page-token.js';
import * as v from './validate.js';

type Req = Record<string, any>;

const STATUSES = new Set([
  'REQUESTED', 'REQUEST_REJECTED', 'REQUEST_WITHDRAWN', 'PENDING_FUNDING', 'FUNDING_FAILED', 'FUNDED',
  'RELEASE_REQUESTED', 'CANCELLATION_REQUESTED', 'DISPUTED', 'RELEASED', 'CANCELLED', 'RESOLVED',
]);

const reply = (s: Persisted<MilestoneContext>) => ({ milestone: milestoneMessage(s) });

export function milestoneService(deps: HandlerDeps, app: MilestoneApp, pool: Pool): grpc.UntypedServiceImplementation {
  return {
    CreateMilestone: unary(deps, 'CreateMilestone', async (r: Req, ctx) => {
      const input = {
        projectId: v.requireId(r.project_id, 'project_id'),
        freelancerId: v.requirePartyId(r.freelancer_id, 'freelancer_id'),
        money: v.requireMoney(r.amount, 'amount'),
        description: v.optionalText(r.description, 'description'),
        reviewWindowMs: v.reviewWindowSeconds(r.review_window_seconds) * 1000,
        key: v.requireKey(r.idempotency_key),
      };
      return reply(await app.create(ctx, input));
    }),
    AcceptAward: unary(deps, 'AcceptAward', async (r: Req, ctx) => {
      const projectId = v.requireId(r.project_id, 'project_id');
      return { project: projectMessage(await app.acceptAward(ctx, projectId, v.requireKey(r.idempotency_key))) };
    }),
    RequestRelease: simple(deps, app, 'RequestRelease', 'REQUEST_RELEASE'),
    ReleaseMilestone: unary(deps, 'ReleaseMilestone', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const amount = v.optionalMoney(r.amount, 'amount');
      return reply(await app.release(ctx, id, amount, v.requireKey(r.idempotency_key)));
    }),
    RequestCancellation: unary(deps, 'RequestCancellation', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const code = v.cancellationReason(r.reason_code, { required: true });
      const reason = v.optionalText(r.reason, 'reason');
      return reply(await app.requestCancellation(ctx, id, code, reason, v.requireKey(r.idempotency_key)));
    }),
    CancelMilestone: unary(deps, 'CancelMilestone', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const code = v.cancellationReason(r.reason_code, { required: false });
      const reason = v.optionalText(r.reason, 'reason');
      return reply(await app.cancel(ctx, id, code, reason, v.requireKey(r.idempotency_key)));
    }),
    GetMilestone: unary(deps, 'GetMilestone', async (r: Req, ctx) => reply(await app.get(ctx, v.requireMilestoneId(r.milestone_id)))),
    ListMilestones: unary(deps, 'ListMilestones', async (r: Req, ctx) => {
      if (r.direction !== 'INCOMING' && r.direction !== 'OUTGOING') {
        throw new InvalidArgument('DIRECTION_REQUIRED', 'direction must be INCOMING or OUTGOING', { field: 'direction' });
      }
      const statuses: string[] = Array.isArray(r.statuses) ? r.statuses : [];
      if (statuses.some((s) => !STATUSES.has(s))) throw new InvalidArgument('STATUS_INVALID', 'unknown status in statuses', { field: 'statuses' });
      const limit = v.pageSize(r.page_size);
      const projectId = v.optionalId(r.project_id, 'project_id');
      // A token serves the query it was issued for: the caller, direction, statuses and project.
      const scope = ['milestones', ctx.caller.id, r.direction, [...statuses].sort().join(','), projectId ?? ''].join('\u0000');
      const after = deps.pages.open(scope, r.page_token, (p) => isTime(p.c) && isUuid(p.id));
      const rows = await read.listMilestones(pool, {
        partyColumn: r.direction === 'INCOMING' ? 'freelancer_id' : 'employer_id',
        userId: ctx.caller.id,
        statuses,
        projectId,
        after: after ? { createdAt: after.c!, id: after.id! } : null,
        limit,
      });
      const last = rows[rows.length - 1];
      return {
        milestones: rows.map(milestoneRowMessage),
        next_page_token: rows.length === limit && last ? deps.pages.issue(scope, { c: last.created_at.toISOString(), id: last.milestone_id }) : '',
      };
    }),
    WatchMilestone: serverStream(deps, 'WatchMilestone', async (r: Req, ctx, call) => {
      const id = v.requireMilestoneId(r.milestone_id);
      await watch(app, id, ctx.caller, (s) => call.write(reply(s)), call, deps.limits.watchMaxAgeMs);
    }),
    RequestMilestone: unary(deps, 'RequestMilestone', async (r: Req, ctx) => {
      const input = {
        projectId: v.requireId(r.project_id, 'project_id'),
        employerId: v.requirePartyId(r.employer_id, 'employer_id'),
        money: v.requireMoney(r.amount, 'amount'),
        description: v.optionalText(r.description, 'description'),
        key: v.requireKey(r.idempotency_key),
      };
      return reply(await app.requestMilestone(ctx, input));
    }),
    AcceptMilestoneRequest: unary(deps, 'AcceptMilestoneRequest', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      return reply(await app.acceptRequest(ctx, id, v.requireKey(r.idempotency_key)));
    }),
    RejectMilestoneRequest: simple(deps, app, 'RejectMilestoneRequest', 'REJECT_REQUEST'),
    WithdrawMilestoneRequest: simple(deps, app, 'WithdrawMilestoneRequest', 'WITHDRAW_REQUEST'),
    RejectCancellation: simple(deps, app, 'RejectCancellation', 'REJECT_CANCELLATION'),
    OpenDispute: unary(deps, 'OpenDispute', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const reason = v.requireText(r.reason, 'reason');
      const claim = v.requireMoney(r.claimed_amount, 'claimed_amount');
      return reply(await app.openDispute(ctx, id, reason, claim, v.requireKey(r.idempotency_key)));
    }),
    ProposeSettlement: split(deps, app, 'ProposeSettlement', 'PROPOSE_SETTLEMENT'),
    AcceptSettlement: unary(deps, 'AcceptSettlement', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const expected = v.optionalMoney(r.freelancer_amount, 'freelancer_amount', { allowZero: true });
      return reply(await app.acceptSettlement(ctx, id, expected, v.requireKey(r.idempotency_key)));
    }),
    EscalateDispute: unary(deps, 'EscalateDispute', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      return reply(await app.escalate(ctx, id, v.requireKey(r.idempotency_key)));
    }),
    ResolveDispute: split(deps, app, 'ResolveDispute', 'RESOLVE'),
  };
}

/** An RPC that splits what is held: the amount for the freelancer (may be zero), the rest to the employer. */
function split(deps: HandlerDeps, app: MilestoneApp, name: string, type: 'PROPOSE_SETTLEMENT' | 'RESOLVE') {
  return unary(deps, name, async (r: Req, ctx) => {
    const id = v.requireMilestoneId(r.milestone_id);
    const amount = v.requireMoney(r.freelancer_amount, 'freelancer_amount', { allowZero: true });
    return reply(await app.split(ctx, id, type, amount, v.requireKey(r.idempotency_key)));
  });
}

/** An RPC that names only the milestone and the key. */
function simple(deps: HandlerDeps, app: MilestoneApp, name: string, type: Parameters<MilestoneApp['simple']>[2]) {
  return unary(deps, name, async (r: Req, ctx) => {
    const id = v.requireMilestoneId(r.milestone_id);
    return reply(await app.simple(ctx, id, type, v.requireKey(r.idempotency_key)));
  });
}

/**
 * Streams the milestone's state: the current state, then each newer one, until a final status
 * or the client goes away. Every message on the milestone's subject makes the actor read
 * what the log has beyond what it holds (it may be behind another gateway), through its
 * mailbox, so states are written in order and each with its history.
 */
async function watch(
  app: MilestoneApp,
  id: string,
  caller: { id: string; roles: readonly string[] },
  write: (s: Persisted<MilestoneContext>) => void,
  call: grpc.ServerWritableStream<unknown, unknown>,
  maxAgeMs: number,
): Promise<void> {
  const log = app.log;
  const subject = log.names.milestone(id);
  let sent = 0;
  let allowed = false;
  let finish!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));
  const emit = (s: Persisted<MilestoneContext>) => {
    if (s.version <= sent) return;
    sent = s.version;
    write(s);
    if (FINAL_STATES.has(s.state)) finish();
  };
  const follow = () =>
    app.milestones.read(id).then(
      (s) => allowed && emit(s),
      (err: Error) => finish(err),
    );
  // Subscribed before the first read, so no change between the two is missed; nothing is
  // written before the caller is known to be a party.
  const sub = log.nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return finish(new Unavailable('EVENT_LOG_UNAVAILABLE', 'the event subscription failed'));
      if (!log.verified(msg.subject, msg.data, msg.headers?.get(SIGNATURE_HEADER))) return;
      const version = Number(msg.headers?.get(VERSION_HEADER));
      if (Number.isInteger(version) && version > 0) app.milestones.peek(id)?.observe(version);
      else app.milestones.peek(id)?.invalidate();
      void follow();
    },
  });
  call.on('cancelled', () => finish());
  call.on('close', () => finish());
  // A stream ends cleanly (OK) at its maximum age; the client watches again if it still cares.
  const age = setTimeout(() => finish(), maxAgeMs);
  try {
    const first = await app.get({ caller, deadline: Number.POSITIVE_INFINITY }, id);
    allowed = true;
    emit(first);
    void follow();
    await done;
  } finally {
    clearTimeout(age);
    sub.unsubscribe();
  }
}
