import * as grpc from '@grpc/grpc-js';
import { DISPUTE_STAGE, MILESTONE_STATUS, type MilestoneContext } from '../../actors/milestone/index.js';
import type { MilestoneApp } from '../app/milestones.js';
import { listDisputes, listMilestones, watchMilestone, type ListedMilestone, type Persisted, type ReadPool } from '../app/views.js';
import { InvalidArgument, PermissionDenied } from '../errors.js';
import { ARBITER_ROLE } from '../../actors/decision.js';
import { milestoneMessage, milestoneSummary, projectMessage } from './convert.js';
import { serverStream, unary, type HandlerDeps } from './handlers.js';
import { isTime, isUuid } from './page-token.js';
import * as v from './validate.js';

/** A request as @grpc/proto-loader decodes it: every field is checked before use (./validate.ts). */
type Req = Record<string, unknown>;

/** The statuses a list filter may name: the machine's, but the unspecified one. */
const STATUSES: ReadonlySet<string> = new Set(Object.values(MILESTONE_STATUS).filter((st) => st !== 'STATUS_UNSPECIFIED'));

/** The stages of an open dispute (the read model's dispute_stage): the machine's, but the end. */
const OPEN_STAGES: string[] = [...new Set(Object.values(DISPUTE_STAGE))].filter((st) => st !== 'RESOLVED');

const reply = (s: Persisted<MilestoneContext>) => ({ milestone: milestoneMessage(s) });

export function milestoneService(deps: HandlerDeps, app: MilestoneApp, pool: ReadPool): grpc.UntypedServiceImplementation {
  return {
    CreateMilestone: unary(deps, 'CreateMilestone', async (r: Req, ctx) => {
      const input = {
        projectId: v.requireId(r.project_id, 'project_id'),
        freelancerId: v.requirePartyId(r.freelancer_id, 'freelancer_id'),
        money: v.requireMoney(r.amount, 'amount'),
        description: v.optionalText(r.description, 'description'),
        milestoneReason: v.milestoneReason(r.milestone_reason),
        reviewWindowMs: v.reviewWindowSeconds(r.review_window_seconds) * 1000,
        key: v.requireKey(r.idempotency_key),
      };
      return reply(await app.create(ctx, input));
    }),
    AwardProject: unary(deps, 'AwardProject', async (r: Req, ctx) => {
      const input = {
        projectId: v.requireId(r.project_id, 'project_id'),
        freelancerId: v.requirePartyId(r.freelancer_id, 'freelancer_id'),
        employerId: r.employer_id === undefined || r.employer_id === '' ? null : v.requirePartyId(r.employer_id, 'employer_id'),
        key: v.requireKey(r.idempotency_key),
      };
      return { project: projectMessage(await app.awardProject(ctx, input)) };
    }),
    GetProject: unary(deps, 'GetProject', async (r: Req, ctx) => ({
      project: projectMessage(await app.getProject(ctx, v.requireId(r.project_id, 'project_id'))),
    })),
    AcceptAward: unary(deps, 'AcceptAward', async (r: Req, ctx) => {
      const projectId = v.requireId(r.project_id, 'project_id');
      return { project: projectMessage(await app.acceptAward(ctx, projectId, v.requireKey(r.idempotency_key))) };
    }),
    RequestRelease: simple(deps, app, 'RequestRelease', 'REQUEST_RELEASE'),
    UpdateMilestoneDescription: unary(deps, 'UpdateMilestoneDescription', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const description = v.optionalText(r.description, 'description');
      return reply(await app.updateDescription(ctx, id, description, v.requireKey(r.idempotency_key)));
    }),
    RequestChanges: unary(deps, 'RequestChanges', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const reason = v.requireText(r.reason, 'reason');
      return reply(await app.withReason(ctx, id, 'REQUEST_CHANGES', reason, v.requireKey(r.idempotency_key)));
    }),
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
      const statuses = Array.isArray(r.statuses) ? r.statuses.map((s: unknown) => (typeof s === 'string' ? s : '')) : [];
      if (statuses.some((s) => !STATUSES.has(s)))
        throw new InvalidArgument('STATUS_INVALID', 'unknown status in statuses', { field: 'statuses' });
      const limit = v.pageSize(r.page_size);
      const projectId = v.optionalId(r.project_id, 'project_id');
      const sort = v.milestoneSort(r.sort);
      const created = v.timeRange(r.created_from, r.created_before, 'created');
      const updated = v.timeRange(r.updated_from, r.updated_before, 'updated');
      // A token serves the query it was issued for: the caller, direction, statuses, project, order and ranges.
      const scope = [
        'milestones',
        ctx.caller.id,
        r.direction,
        [...statuses].sort().join(','),
        projectId ?? '',
        `${sort.column} ${sort.descending ? 'desc' : 'asc'}`,
        created.from ?? '',
        created.before ?? '',
        updated.from ?? '',
        updated.before ?? '',
      ].join('\u0000');
      const after = deps.pages.open(scope, r.page_token, (p) => isTime(p.c) && isUuid(p.id));
      const listed = await listMilestones(app, pool, {
        partyColumn: r.direction === 'INCOMING' ? 'freelancer_id' : 'employer_id',
        userId: ctx.caller.id,
        statuses,
        projectId,
        sort,
        created,
        updated,
        after: after?.c && after.id ? { at: after.c, id: after.id } : null,
        limit,
      });
      return page(deps, scope, listed, limit, (m) => (sort.column === 'created_at' ? m.createdAt : m.updatedAt));
    }),
    WatchMilestone: serverStream(deps, 'WatchMilestone', async (r: Req, ctx, call) => {
      const id = v.requireMilestoneId(r.milestone_id);
      await watchMilestone(
        app,
        id,
        ctx.caller,
        (s) => call.write(reply(s)),
        (end) => {
          call.on('cancelled', end);
          call.on('close', end);
        },
        deps.limits.watchMaxAgeMs,
      );
    }),
    RequestMilestone: unary(deps, 'RequestMilestone', async (r: Req, ctx) => {
      const input = {
        projectId: v.requireId(r.project_id, 'project_id'),
        employerId: v.requirePartyId(r.employer_id, 'employer_id'),
        money: v.requireMoney(r.amount, 'amount'),
        description: v.optionalText(r.description, 'description'),
        milestoneReason: v.milestoneReason(r.milestone_reason),
        key: v.requireKey(r.idempotency_key),
      };
      return reply(await app.requestMilestone(ctx, input));
    }),
    AcceptMilestoneRequest: unary(deps, 'AcceptMilestoneRequest', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const reviewWindowMs = v.reviewWindowSeconds(r.review_window_seconds) * 1000;
      return reply(await app.acceptRequest(ctx, id, reviewWindowMs, v.requireKey(r.idempotency_key)));
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
    EscalateDispute: feeCommand(deps, app, 'EscalateDispute', 'ESCALATE'),
    PayArbitrationFee: feeCommand(deps, app, 'PayArbitrationFee', 'PAY_ARBITRATION_FEE'),
    ResolveDispute: split(deps, app, 'ResolveDispute', 'RESOLVE'),
    WithdrawDispute: simple(deps, app, 'WithdrawDispute', 'WITHDRAW_DISPUTE'),
    AcceptClaim: simple(deps, app, 'AcceptClaim', 'ACCEPT_CLAIM'),
    AttachEvidence: unary(deps, 'AttachEvidence', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const ref = v.evidence({ uri: r.uri, sha256: r.sha256, note: r.note });
      return reply(await app.attachEvidence(ctx, id, ref, v.requireKey(r.idempotency_key)));
    }),
    ListDisputes: unary(deps, 'ListDisputes', async (r: Req, ctx) => {
      if (!ctx.caller.roles.includes(ARBITER_ROLE)) throw new PermissionDenied('NOT_ARBITER', 'listing disputes needs the arbiter role');
      const stage = r.stage === undefined || r.stage === '' ? null : r.stage;
      if (stage !== null && (typeof stage !== 'string' || !OPEN_STAGES.includes(stage)))
        throw new InvalidArgument('STAGE_INVALID', `stage must be one of ${OPEN_STAGES.join(', ')}`, { field: 'stage' });
      const limit = v.pageSize(r.page_size);
      // A token serves the caller and the stage it was issued for.
      const scope = ['disputes', ctx.caller.id, stage ?? ''].join('\u0000');
      const after = deps.pages.open(scope, r.page_token, (p) => isTime(p.c) && isUuid(p.id));
      const listed = await listDisputes(app, pool, {
        stages: stage ? [stage] : OPEN_STAGES,
        after: after?.c && after.id ? { at: after.c, id: after.id } : null,
        limit,
      });
      return page(deps, scope, listed, limit, (m) => m.updatedAt);
    }),
    FreezeMilestone: unary(deps, 'FreezeMilestone', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const reason = v.requireText(r.reason, 'reason');
      return reply(await app.withReason(ctx, id, 'FREEZE', reason, v.requireKey(r.idempotency_key)));
    }),
    UnfreezeMilestone: unary(deps, 'UnfreezeMilestone', async (r: Req, ctx) => {
      const id = v.requireMilestoneId(r.milestone_id);
      const reason = v.optionalText(r.reason, 'reason');
      return reply(await app.withReason(ctx, id, 'UNFREEZE', reason, v.requireKey(r.idempotency_key)));
    }),
  };
}

/** A page of listed milestones and the token of the next: the keyset of its last row (its sort time and id), empty on a short page. */
function page(deps: HandlerDeps, scope: string, listed: ListedMilestone[], limit: number, sortTime: (m: ListedMilestone) => Date) {
  const last = listed.at(-1);
  return {
    milestones: listed.map((m) => milestoneSummary(m.state)),
    next_page_token: listed.length === limit && last ? deps.pages.issue(scope, { c: sortTime(last).toISOString(), id: last.state.id }) : '',
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

/** An RPC that charges an arbitration fee (an escalation, the other party's fee): the milestone and the key. */
function feeCommand(deps: HandlerDeps, app: MilestoneApp, name: string, type: 'ESCALATE' | 'PAY_ARBITRATION_FEE') {
  return unary(deps, name, async (r: Req, ctx) => {
    const id = v.requireMilestoneId(r.milestone_id);
    return reply(await app.payFee(ctx, id, type, v.requireKey(r.idempotency_key)));
  });
}

/** An RPC that names only the milestone and the key. */
function simple(deps: HandlerDeps, app: MilestoneApp, name: string, type: Parameters<MilestoneApp['simple']>[2]) {
  return unary(deps, name, async (r: Req, ctx) => {
    const id = v.requireMilestoneId(r.milestone_id);
    return reply(await app.simple(ctx, id, type, v.requireKey(r.idempotency_key)));
  });
}
