import type { Caller } from '../decision.js';
import { disputeStageOf, statusOf } from './status.js';
import type { Dispute, MilestoneEvent } from './types.js';
import { secondFee } from './money.js';

/**
 * The sagas of a milestone, in one place: a state that waits for the ledger (or an account
 * actor), the events that ask for the outcome (the outcome's causation), and the commands the
 * outcome becomes. The app resumes and steps them (src/app/milestones.ts), the runtime runs
 * the step after a load (its resume hook), and the read model finds the unfinished ones.
 */
export const SAGAS = {
  pendingFunding: { asked: ['created', 'request_accepted'], ok: 'FUNDING_SUCCEEDED', failed: 'FUNDING_FAILED' },
  escalating: { asked: ['escalation_requested'], ok: 'ESCALATION_SUCCEEDED', failed: 'ESCALATION_FAILED' },
  payingFee: { asked: ['arbitration_fee_requested'], ok: 'ARBITRATION_FEE_PAID', failed: 'ARBITRATION_FEE_FAILED' },
} as const;

export type SagaState = keyof typeof SAGAS;

export function isSagaState(state: string): state is SagaState {
  return Object.hasOwn(SAGAS, state);
}

/**
 * The causation id of the outcome a milestone waits for: the id of the event that asked for
 * it, which is the last one (in a saga state nothing but the outcome is accepted); '' when the
 * last event is not an asking one. Outside a saga state, a funding's asking events count.
 */
export function sagaCausation(state: string, last: { type: string; id: string } | undefined): string {
  const asked: readonly string[] = isSagaState(state) ? SAGAS[state].asked : SAGAS.pendingFunding.asked;
  return last && asked.includes(last.type) ? last.id : '';
}

/** The command an outcome becomes in a saga state: its success, or its failure with the outcome's result as the reason. */
export function sagaOutcomeEvent(state: SagaState, result: string, by: Caller, at: string): MilestoneEvent {
  const saga = SAGAS[state];
  return result === 'ok' ? { type: saga.ok, by, at } : { type: saga.failed, by, at, reason: result.toUpperCase() };
}

/**
 * How the read model finds milestones still in a saga: by status, or by dispute stage where
 * the status is shared (an escalation is DISPUTED like the rest of a dispute).
 */
export const SAGA_STATUSES: readonly string[] = Object.keys(SAGAS)
  .filter((s) => disputeStageOf(s) === undefined)
  .map(statusOf);
export const SAGA_DISPUTE_STAGES: readonly string[] = [...new Set(Object.keys(SAGAS).flatMap((s) => disputeStageOf(s) ?? []))];

/**
 * The arbitration fee an account actor decides in a fee saga (the escalating party's, or the
 * other party's second fee): who pays and how much, read from the dispute.
 */
export function sagaFee(state: string, d: Dispute): { payerId: string; amount: string } | null {
  if (state === 'escalating') return { payerId: d.escalatedBy, amount: d.arbitrationFee };
  if (state === 'payingFee') return secondFee(d);
  return null;
}
