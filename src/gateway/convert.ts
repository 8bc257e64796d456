import {
  disputeStageWhile,
  escalationPossibleAt,
  secondFee,
  secondFeePayer,
  statusOf,
  type Dispute,
  type MilestoneContext,
} from '../../actors/milestone/index.js';
import { isAwardAccepted, type ProjectContext } from '../../actors/project.machine.js';
import type { Balance } from '../app/accounts.js';
import { format } from '../../actors/money.js';
import { historyOf, type EntityState, type EntryRow, type Persisted } from '../app/views.js';

/** Domain values to the messages of proto/escrow/v1. */

export function timestamp(iso: string | Date): { seconds: string; nanos: number } {
  const ms = typeof iso === 'string' ? Date.parse(iso) : iso.getTime();
  if (!Number.isFinite(ms)) return { seconds: '0', nanos: 0 };
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

export function money(currency: string, amount: string) {
  return { currency_code: currency, amount: currency ? format(currency, amount) : amount };
}

/** A milestone as GetMilestone shows it but for its history: what lists show (from the read model's copy of the context). */
export function milestoneSummary(s: EntityState<MilestoneContext>) {
  const c = s.context;
  return {
    id: s.id,
    project_id: c.projectId,
    employer_id: c.employerId,
    freelancer_id: c.freelancerId,
    amount: money(c.currency, c.amount),
    held: money(c.currency, c.held),
    released: money(c.currency, c.released),
    returned: money(c.currency, c.returned),
    status: statusOf(s.state),
    version: s.version,
    description: c.description,
    milestone_reason: c.milestoneReason || 'MILESTONE_REASON_UNSPECIFIED',
    created_at: timestamp(c.createdAt),
    updated_at: timestamp(c.updatedAt),
    funding_failure_reason: c.fundingFailureReason,
    cancellation_reason: c.cancellationReason,
    cancellation_reason_code: c.cancellationReasonCode || 'CANCELLATION_REASON_UNSPECIFIED',
    employer_fee: money(c.currency, c.employerFee),
    freelancer_fee: money(c.currency, c.freelancerFee),
    review_window_seconds: Math.floor(c.terms.reviewWindowMs / 1000),
    auto_release_at: c.dueKind === 'auto_release' ? timestamp(c.dueAt) : null,
    dispute: c.dispute ? disputeMessage(s, c.dispute) : null,
    freeze: c.frozen
      ? { reason: c.frozen.reason, frozen_by: c.frozen.byId, frozen_at: timestamp(c.frozen.at), previous_status: statusOf(c.frozen.from) }
      : null,
    history: [] as ReturnType<typeof historyMessages>,
  };
}

export function milestoneMessage(s: Persisted<MilestoneContext>) {
  return { ...milestoneSummary(s), history: historyMessages(s) };
}

function historyMessages(s: Persisted<MilestoneContext>) {
  const c = s.context;
  return historyOf(s).map((h) => {
    const m = (key: string) => (typeof h.data[key] === 'string' ? money(c.currency, h.data[key]) : null);
    return {
      version: h.version,
      type: h.type,
      actor_id: h.by,
      amount: m('amount'),
      at: timestamp(h.at),
      reason: typeof h.data.reason === 'string' ? h.data.reason : '',
      fee: m('fee') ?? m('employerFee'),
      freelancer_amount: m('freelancerAmount'),
      employer_amount: m('employerAmount'),
      claimed_amount: m('claimedAmount'),
      arbitration_fee: m('arbitrationFee'),
      arbitration_fee_refunded: h.data.arbitrationFeeRefunded === true,
      second_arbitration_fee: m('secondArbitrationFee'),
      second_arbitration_fee_refunded: h.data.secondArbitrationFeeRefunded === true,
      outcome: typeof h.data.outcome === 'string' ? h.data.outcome : h.data.automatic === true ? 'automatic' : '',
      reason_code: typeof h.data.reasonCode === 'string' ? h.data.reasonCode : '',
    };
  });
}

function disputeMessage(s: EntityState<MilestoneContext>, d: Dispute) {
  const c = s.context;
  const awaitingFee = disputeStageWhile(s.state, c.frozen?.from) === 'AWAITING_FEE';
  const second = secondFee(d);
  return {
    stage: disputeStageWhile(s.state, c.frozen?.from) ?? (d.outcome === 'withdrawn' ? 'WITHDRAWN' : 'RESOLVED'),
    filer_id: d.filerId,
    respondent_id: d.respondentId,
    reason: d.reason,
    claimed_amount: money(c.currency, d.claim),
    opened_at: timestamp(d.openedAt),
    respond_by: c.dueKind === 'dispute_response' ? timestamp(c.dueAt) : null,
    escalation_possible_at: timestamp(escalationPossibleAt(c, d)),
    proposed_by: d.proposal?.byId ?? '',
    proposed_freelancer_amount: d.proposal ? money(c.currency, d.proposal.freelancerAmount) : null,
    escalated_by: d.escalatedBy,
    arbitration_fee: money(c.currency, d.arbitrationFee),
    escalation_failure_reason: d.escalationFailureReason,
    outcome: d.outcome,
    freelancer_amount: d.freelancerAmount ? money(c.currency, d.freelancerAmount) : null,
    evidence: c.evidence.map((e) => ({ attached_by: e.byId, uri: e.uri, sha256: e.sha256, note: e.note, attached_at: timestamp(e.at) })),
    // The other party's fee: due while awaited (frozen, its deadline is stopped), paid once charged.
    fee_due_from: awaitingFee ? secondFeePayer(d) : '',
    fee_due_by: c.dueKind === 'arbitration_fee' ? timestamp(c.dueAt) : null,
    second_fee_paid_by: second?.payerId ?? '',
    second_arbitration_fee: second ? money(c.currency, second.amount) : null,
  };
}

export function projectMessage(s: Persisted<ProjectContext>) {
  return {
    id: s.id,
    employer_id: s.context.employerId,
    freelancer_id: s.context.freelancerId,
    award_accepted: isAwardAccepted(s.state),
    version: s.version,
  };
}

export function balanceMessage(b: Balance) {
  return {
    user_id: b.userId,
    available: money(b.currency, b.available),
    held: money(b.currency, b.held),
    incoming: money(b.currency, b.incoming),
    pending: money(b.currency, b.pending),
    next_clearing_at: b.nextClearingAt ? timestamp(b.nextClearingAt) : null,
  };
}

export function entryMessage(r: EntryRow) {
  return {
    event_id: r.event_id,
    kind: r.kind,
    amount: money(r.currency, r.amount),
    milestone_id: r.milestone_id ?? '',
    created_at: timestamp(r.created_at),
    fee: money(r.currency, r.fee),
    pending: r.account_kind === 'pending',
    clears_at: r.clears_at ? timestamp(r.clears_at) : null,
  };
}
