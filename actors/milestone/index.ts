/**
 * The milestone state machine: the single place that says which command is legal in which
 * state, and for whom. It is pure (guards and context updates only); the actor runtime
 * decides with xstate's `transition` and appends what the machine emitted.
 *
 * Money invariant kept by every transition: amount = held + released + returned once funded.
 * Fees are on top (the employer fee) or inside what was released (the freelancer fee); they
 * never change that sum.
 */
export {
  PROPOSALS_MAX,
  ESCALATIONS_MAX,
  DISPUTES_MAX,
  EVIDENCE_MAX,
  type Evidence,
  MILESTONE_EVENT_CONTEXT,
  initialMilestoneContext,
  CANCELLATION_REASONS,
  MILESTONE_REASONS,
  type Dispute,
  type Freeze,
  type FreezableState,
  type DueKind,
  type MilestoneContext,
  type Funding,
  type MilestoneEvent,
  type MilestoneCommandType,
  type MilestoneTag,
} from './types.js';
export {
  MILESTONE_STATUS,
  DISPUTE_STAGE,
  isMilestoneState,
  statusOf,
  disputeStageOf,
  disputeStageWhile,
  type MilestoneStateName,
  type MilestoneStatus,
} from './status.js';
export { releaseAmount, escalationPossibleAt, secondFee, secondFeePayer } from './money.js';
export { milestonePermission, mayView } from './access.js';
export {
  milestoneMachine,
  FINAL_STATES,
  DISPUTE_STATES,
  TIMER_STATES,
  HOLDING_STATES,
  UNFUNDED_STATES,
  UNFUNDED_STATUSES,
  NEVER_HELD_STATUSES,
  decideMilestone,
} from './machine.js';
export {
  SAGAS,
  isSagaState,
  sagaCausation,
  sagaOutcomeEvent,
  sagaFee,
  SAGA_STATUSES,
  SAGA_DISPUTE_STAGES,
  type SagaState,
} from './sagas.js';
