import { assign, setup } from 'xstate';
import type { CommandBase, DecisionSlots, Rejection } from './decision.js';
import type { ProjectEmitted } from './events.js';

/**
 * The project machine: who the employer and the awarded freelancer of a project are, and
 * whether the freelancer accepted the award (from then on only the freelancer may cancel a
 * milestone). A project comes into being with its award (AwardProject), or with its first
 * milestone.
 */

export interface ProjectContext extends DecisionSlots<ProjectEmitted> {
  id: string;
  employerId: string;
  freelancerId: string;
  createdAt: string;
  awardAcceptedAt: string;
}

export type ProjectEvent =
  /**
   * AwardProject, and sent before each CreateMilestone: registers the parties, or checks them.
   * `employerId` is the caller, or the employer a marketplace service awards for (src/app checks the role).
   */
  | (CommandBase & { type: 'REGISTER'; projectId: string; employerId: string; freelancerId: string })
  | (CommandBase & { type: 'ACCEPT_AWARD' })
  /** Sent before each RequestMilestone: only the awarded freelancer may propose, to the project's employer. */
  | (CommandBase & { type: 'CHECK_REQUEST'; employerId: string });

export const initialProjectContext: ProjectContext = {
  id: '',
  employerId: '',
  freelancerId: '',
  createdAt: '',
  awardAcceptedAt: '',
  rejection: null,
  emitted: null,
};

function reject(code: Rejection['code'], reason: string, message: string): Rejection {
  return { code, reason, message };
}

const requestChecks = [
  { guard: 'isNotFreelancer' as const, actions: 'rejectNotFreelancer' as const },
  { guard: 'isOtherEmployer' as const, actions: 'rejectOtherEmployer' as const },
  // The awarded freelancer, to the project's employer: legal, and nothing to record.
  {},
];

const registerChecks = [
  { guard: 'isNotEmployer' as const, actions: 'rejectNotEmployer' as const },
  { guard: 'isOtherFreelancer' as const, actions: 'rejectOtherFreelancer' as const },
  // Same parties: legal, and nothing to record.
  {},
];

export const projectMachine = setup({
  types: { context: {} as ProjectContext, events: {} as ProjectEvent },
  guards: {
    isNotEmployer: ({ context, event }) => (event.type === 'REGISTER' ? event.employerId : event.by.id) !== context.employerId,
    isOtherFreelancer: ({ context, event }) => event.type === 'REGISTER' && event.freelancerId !== context.freelancerId,
    isFreelancer: ({ context, event }) => event.by.id === context.freelancerId,
    isNotFreelancer: ({ context, event }) => event.by.id !== context.freelancerId,
    isOtherEmployer: ({ context, event }) => event.type === 'CHECK_REQUEST' && event.employerId !== context.employerId,
    isSelfAward: ({ event }) => event.type === 'REGISTER' && event.freelancerId === event.employerId,
  },
  actions: {
    rejectNotFound: assign({ rejection: () => reject('NOT_FOUND', 'PROJECT_NOT_FOUND', 'no such project') }),
    rejectNotEmployer: assign({
      rejection: () => reject('PERMISSION_DENIED', 'NOT_PROJECT_EMPLOYER', 'caller is not the employer of this project'),
    }),
    rejectOtherFreelancer: assign({
      rejection: () => reject('FAILED_PRECONDITION', 'FREELANCER_NOT_AWARDED', 'the project is awarded to another freelancer'),
    }),
    rejectOtherEmployer: assign({
      rejection: () => reject('FAILED_PRECONDITION', 'NOT_PROJECT_EMPLOYER', 'employer_id is not the employer of this project'),
    }),
    rejectSelfAward: assign({
      rejection: () => reject('INVALID_ARGUMENT', 'SELF_AWARD', 'the employer cannot be the freelancer of their own project'),
    }),
    rejectNotFreelancer: assign({
      rejection: () => reject('PERMISSION_DENIED', 'NOT_FREELANCER', 'caller is not the awarded freelancer of this project'),
    }),
    rejectAlreadyAccepted: assign({
      rejection: () => reject('FAILED_PRECONDITION', 'AWARD_ALREADY_ACCEPTED', 'the award is already accepted'),
    }),
    register: assign(({ event }) =>
      event.type !== 'REGISTER'
        ? {}
        : {
            id: event.projectId,
            employerId: event.employerId,
            freelancerId: event.freelancerId,
            createdAt: event.at,
            emitted: { type: 'registered', data: { employerId: event.employerId, freelancerId: event.freelancerId } },
          },
    ),
    acceptAward: assign(({ event }) => ({
      awardAcceptedAt: event.at,
      emitted: { type: 'award_accepted', data: {} },
    })),
  },
}).createMachine({
  id: 'project',
  initial: 'new',
  context: initialProjectContext,
  states: {
    new: {
      description: 'Unknown project: its award or its first milestone registers it.',
      on: {
        REGISTER: [
          { guard: 'isSelfAward', actions: 'rejectSelfAward' },
          { target: 'awarded', actions: 'register' },
        ],
        ACCEPT_AWARD: { actions: 'rejectNotFound' },
        CHECK_REQUEST: { actions: 'rejectNotFound' },
      },
    },
    awarded: {
      description: 'Awarded to the freelancer, not yet accepted: the employer may still cancel milestones.',
      on: {
        REGISTER: registerChecks,
        CHECK_REQUEST: requestChecks,
        ACCEPT_AWARD: [{ guard: 'isFreelancer', target: 'awardAccepted', actions: 'acceptAward' }, { actions: 'rejectNotFreelancer' }],
      },
    },
    awardAccepted: {
      description: 'The freelancer accepted the award: only the freelancer may cancel milestones.',
      on: {
        REGISTER: registerChecks,
        CHECK_REQUEST: requestChecks,
        ACCEPT_AWARD: [{ guard: 'isFreelancer', actions: 'rejectAlreadyAccepted' }, { actions: 'rejectNotFreelancer' }],
      },
    },
  },
});

export function isAwardAccepted(state: string): boolean {
  return state === 'awardAccepted';
}
