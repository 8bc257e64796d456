import { ARBITER_ROLE, SUPPORT_ROLE, SYSTEM_CALLER, type Rejection } from '../decision.js';
import type { Position } from '../decide.js';
import type { MilestoneContext, MilestoneEvent, MilestoneCommandType } from './types.js';
import { reject } from './refusals.js';

/** Who may issue which command (the permission table, asked before the machine) and who may read a milestone. */

const isEmployer = (c: MilestoneContext, e: MilestoneEvent) => e.by.id === c.employerId;

const isFreelancer = (c: MilestoneContext, e: MilestoneEvent) => e.by.id === c.freelancerId;

const isSystem = (_c: MilestoneContext, e: MilestoneEvent) => e.by.id === SYSTEM_CALLER;

const isParty = (c: MilestoneContext, e: MilestoneEvent) => isEmployer(c, e) || isFreelancer(c, e);

const systemOnly = (c: MilestoneContext, e: MilestoneEvent) => (isSystem(c, e) ? null : 'SYSTEM_ONLY');

const partiesOnly = (c: MilestoneContext, e: MilestoneEvent) => (isParty(c, e) ? null : 'NOT_PARTY');

/**
 * Who may issue each command. Returns null when the caller may, else the stable reason of
 * the PERMISSION_DENIED refusal. This table is the whole of the milestone's access rules.
 */
const partyRefusal: { [T in MilestoneCommandType]: (c: MilestoneContext, e: Extract<MilestoneEvent, { type: T }>) => string | null } = {
  // Whoever creates a milestone becomes its employer; project membership is checked by the project machine.
  CREATE: () => null,
  // Whoever requests becomes its freelancer; project membership is checked by the project machine.
  REQUEST: () => null,
  ACCEPT_REQUEST: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  REJECT_REQUEST: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  WITHDRAW_REQUEST: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  REJECT_CANCELLATION: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  FUNDING_SUCCEEDED: systemOnly,
  FUNDING_FAILED: systemOnly,
  VOID_RESERVATION: systemOnly,
  REQUEST_RELEASE: (c, e) => (isFreelancer(c, e) ? null : 'NOT_FREELANCER'),
  RELEASE: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  REQUEST_CHANGES: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  UPDATE_DESCRIPTION: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  REQUEST_CANCELLATION: (c, e) => (isEmployer(c, e) ? null : 'NOT_EMPLOYER'),
  // Once the freelancer accepted the award only the freelancer may cancel (return the money).
  CANCEL: (c, e) => {
    if (isFreelancer(c, e)) return null;
    if (isEmployer(c, e)) return e.awardAccepted ? 'AWARD_ACCEPTED_ONLY_FREELANCER_MAY_CANCEL' : null;
    return 'NOT_PARTY';
  },
  OPEN_DISPUTE: partiesOnly,
  PROPOSE_SETTLEMENT: partiesOnly,
  ACCEPT_SETTLEMENT: partiesOnly,
  ESCALATE: partiesOnly,
  // The machine says which party owes the fee (the one that did not escalate).
  PAY_ARBITRATION_FEE: partiesOnly,
  // Which party (the filer, the respondent) is the dispute's to say: the machine checks it in the dispute's states.
  WITHDRAW_DISPUTE: partiesOnly,
  ACCEPT_CLAIM: partiesOnly,
  ATTACH_EVIDENCE: partiesOnly,
  ESCALATION_SUCCEEDED: systemOnly,
  ESCALATION_FAILED: systemOnly,
  ARBITRATION_FEE_PAID: systemOnly,
  ARBITRATION_FEE_FAILED: systemOnly,
  // An arbiter decides disputes it is not a party to.
  RESOLVE: (c, e) => (!e.by.roles.includes(ARBITER_ROLE) ? 'NOT_ARBITER' : isParty(c, e) ? 'ARBITER_IS_PARTY' : null),
  DEADLINE: systemOnly,
  // Support staff freeze milestones they are not a party to.
  FREEZE: (c, e) => supportRefusal(c, e),
  UNFREEZE: (c, e) => supportRefusal(c, e),
};

function supportRefusal(c: MilestoneContext, e: MilestoneEvent): string | null {
  return !e.by.roles.includes(SUPPORT_ROLE) ? 'NOT_SUPPORT' : isParty(c, e) ? 'SUPPORT_IS_PARTY' : null;
}

function refusalFor(c: MilestoneContext, e: MilestoneEvent): string | null {
  const rule = partyRefusal[e.type] as (c: MilestoneContext, e: MilestoneEvent) => string | null;
  return rule(c, e);
}

/**
 * Who may issue a command, checked before the machine runs (the permission table above):
 * PERMISSION_DENIED with the table's reason. A milestone that does not exist yet has no
 * parties: there only voiding a reservation is the system's alone, and any other command is
 * the machine's to answer (CREATE, REQUEST, or NOT_FOUND).
 */
export function milestonePermission(at: Position<MilestoneContext>, e: MilestoneEvent): Rejection | null {
  if (at.state === 'new' && e.type !== 'VOID_RESERVATION') return null;
  const reason = refusalFor(at.context, e);
  return reason === null ? null : reject('PERMISSION_DENIED', reason, `caller may not ${e.type} this milestone`);
}

/** Who may read a milestone (GetMilestone, WatchMilestone): its two parties, arbiters (who decide disputes) and support staff (who freeze). */
export function mayView(c: MilestoneContext, caller: { id: string; roles?: readonly string[] }): boolean {
  return (
    caller.id === c.employerId ||
    caller.id === c.freelancerId ||
    !!caller.roles?.includes(ARBITER_ROLE) ||
    !!caller.roles?.includes(SUPPORT_ROLE)
  );
}
