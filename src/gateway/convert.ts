import { MILESTONE_STATUS, type MilestoneContext, type MilestoneStateName } from '../../actors/milestone.machine.js';
import { isAwardAccepted, type ProjectContext } from '../../actors/project.machine.js';
import type { Balance } from '../app/accounts.js';
import type { EntryRow, MilestoneRow } from '../ledger/read.js';
import { format } from '../money.js';
import type { Persisted } from '../runtime/entity.js';

/** Domain values to the messages of proto/escrow/v1. */

export function timestamp(iso: string | Date): { seconds: string; nanos: number } {
  const ms = typeof iso === 'string' ? Date.parse(iso) : iso.getTime();
  if (!Number.isFinite(ms)) return { seconds: '0', nanos: 0 };
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

export function money(currency: string, amount: string) {
  return { currency_code: currency, amount: currency ? format(currency, amount) : amount };
}

export function milestoneMessage(s: Persisted<MilestoneContext>) {
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
    status: MILESTONE_STATUS[s.state as MilestoneStateName] ?? 'STATUS_UNSPECIFIED',
    version: s.version,
    description: c.description,
    created_at: timestamp(c.createdAt),
    updated_at: timestamp(c.updatedAt),
    funding_failure_reason: c.fundingFailureReason,
    cancellation_reason: c.cancellationReason,
    history: s.history.map((h) => ({
      version: h.version,
      type: h.type,
      actor_id: h.by,
      amount: typeof h.data.amount === 'string' ? money(c.currency, h.data.amount) : null,
      at: timestamp(h.at),
      reason: typeof h.data.reason === 'string' ? h.data.reason : '',
    })),
  };
}

export function milestoneRowMessage(r: MilestoneRow) {
  return {
    id: r.milestone_id,
    project_id: r.project_id,
    employer_id: r.employer_id,
    freelancer_id: r.freelancer_id,
    amount: money(r.currency, r.amount),
    held: money(r.currency, r.held),
    released: money(r.currency, r.released),
    returned: money(r.currency, r.returned),
    status: r.status,
    version: r.version,
    description: r.description,
    created_at: timestamp(r.created_at),
    updated_at: timestamp(r.updated_at),
    history: [],
    funding_failure_reason: '',
    cancellation_reason: '',
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
  };
}

export function entryMessage(r: EntryRow) {
  return {
    event_id: r.event_id,
    kind: r.kind,
    amount: money(r.currency, r.amount),
    milestone_id: r.milestone_id ?? '',
    created_at: timestamp(r.created_at),
  };
}
