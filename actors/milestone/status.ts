/** External status names and dispute stages, by state name (persisted states are plain strings). */

/** External status names, by state. */
export const MILESTONE_STATUS = {
  new: 'STATUS_UNSPECIFIED',
  requested: 'REQUESTED',
  requestRejected: 'REQUEST_REJECTED',
  requestWithdrawn: 'REQUEST_WITHDRAWN',
  pendingFunding: 'PENDING_FUNDING',
  fundingFailed: 'FUNDING_FAILED',
  funded: 'FUNDED',
  releaseRequested: 'RELEASE_REQUESTED',
  cancellationRequested: 'CANCELLATION_REQUESTED',
  released: 'RELEASED',
  cancelled: 'CANCELLED',
  disputed: 'DISPUTED',
  escalating: 'DISPUTED',
  awaitingFee: 'DISPUTED',
  payingFee: 'DISPUTED',
  arbitration: 'DISPUTED',
  resolved: 'RESOLVED',
  frozen: 'FROZEN',
} as const;

/** The stage of a dispute, by state, for clients that need more than DISPUTED. */
export const DISPUTE_STAGE: Partial<Record<MilestoneStateName, string>> = {
  disputed: 'NEGOTIATION',
  escalating: 'ESCALATING',
  // The escalating party paid; the other party's fee is due (AWAITING_FEE), then being charged (ESCALATING again).
  awaitingFee: 'AWAITING_FEE',
  payingFee: 'ESCALATING',
  arbitration: 'ARBITRATION',
  resolved: 'RESOLVED',
};

export type MilestoneStateName = keyof typeof MILESTONE_STATUS;

export type MilestoneStatus = (typeof MILESTONE_STATUS)[MilestoneStateName];

/** Whether a persisted state name (a plain string in the log) is one of this machine's. */
export function isMilestoneState(state: string): state is MilestoneStateName {
  return Object.hasOwn(MILESTONE_STATUS, state);
}

/** The external status of a persisted state name; STATUS_UNSPECIFIED for a name this machine does not have. */
export function statusOf(state: string): MilestoneStatus {
  return isMilestoneState(state) ? MILESTONE_STATUS[state] : 'STATUS_UNSPECIFIED';
}

/**
 * The stage a milestone's dispute is in, read model and API alike: its state's, or, frozen,
 * the stage of the state it was frozen in (a frozen dispute is still open: its arbitration
 * fee stays held). Undefined outside a dispute.
 */
export function disputeStageWhile(state: string, frozenFrom: string | undefined): string | undefined {
  return disputeStageOf(state) ?? (state === 'frozen' && frozenFrom ? disputeStageOf(frozenFrom) : undefined);
}

/** The dispute stage of a persisted state name; undefined outside a dispute. */
export function disputeStageOf(state: string): string | undefined {
  return isMilestoneState(state) ? DISPUTE_STAGE[state] : undefined;
}
