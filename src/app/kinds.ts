import {
  DISPUTE_STATES,
  FINAL_STATES,
  initialMilestoneContext,
  MILESTONE_EVENT_CONTEXT,
  milestoneMachine,
  milestonePermission,
  type MilestoneContext,
  type MilestoneEvent,
} from '../../actors/milestone/index.js';
import { initialProjectContext, projectMachine, type ProjectContext } from '../../actors/project.machine.js';
import type { EntityKind } from '../runtime/entity.js';

/** How the runtime runs each kind of entity of the milestone product: its machine, its permission table, its event rules. */

export const MILESTONE: EntityKind<MilestoneContext> = {
  entity: 'milestone',
  machine: milestoneMachine,
  permission: (at, event) => milestonePermission(at, event as MilestoneEvent),
  initial: { state: 'new', context: initialMilestoneContext },
  finalStates: FINAL_STATES,
  boundedStates: DISPUTE_STATES,
  leftPastLimits: new Set(['frozen']),
  // The terms are copied into every milestone at creation, alike for all made under one policy;
  // a party or a project has many milestones.
  sharedContext: ['terms', 'employerId', 'freelancerId', 'projectId', 'currency'],
  eventContext: MILESTONE_EVENT_CONTEXT,
};

export const PROJECT: EntityKind<ProjectContext> = {
  entity: 'project',
  machine: projectMachine,
  initial: { state: 'new', context: initialProjectContext },
  finalStates: new Set(['awardAccepted']),
};
