import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { initialProjectContext, projectMachine, type ProjectEvent } from './project.machine.js';

const AT = '2026-12-01T00:00:00.000Z';
const by = (id: string) => ({ id, roles: [] });
const register = (employer: string, freelancer: string, caller = employer): ProjectEvent => ({
  type: 'REGISTER',
  by: by(caller),
  at: AT,
  projectId: 'p1',
  employerId: employer,
  freelancerId: freelancer,
});
const accept = (who: string): ProjectEvent => ({ type: 'ACCEPT_AWARD', by: by(who), at: AT });
const awarded = { state: 'awarded', context: { ...initialProjectContext, id: 'p1', employerId: 'emp', freelancerId: 'fl', createdAt: AT } };
const accepted = { ...awarded, state: 'awardAccepted' };

function result(d: ReturnType<typeof decide>) {
  return d.kind === 'rejected' ? d.rejection.reason : d.kind === 'accepted' ? d.next.state : 'unchanged';
}

describe('project machine', () => {
  it('the first milestone registers the parties', () => {
    expect(result(decide(projectMachine, { state: 'new', context: initialProjectContext }, register('emp', 'fl')))).toBe('awarded');
  });
  it('a marketplace service registers the parties it names (the app checks its role)', () => {
    const d = decide(projectMachine, { state: 'new', context: initialProjectContext }, register('emp', 'fl', 'market'));
    expect(d.kind === 'accepted' && d.next.context).toMatchObject({ employerId: 'emp', freelancerId: 'fl' });
    expect(result(decide(projectMachine, awarded, register('emp', 'fl', 'market')))).toBe('unchanged');
    expect(result(decide(projectMachine, awarded, register('other-emp', 'fl', 'market')))).toBe('NOT_PROJECT_EMPLOYER');
  });
  it('an employer cannot award their own project to themselves', () => {
    expect(result(decide(projectMachine, { state: 'new', context: initialProjectContext }, register('emp', 'emp')))).toBe('SELF_AWARD');
  });
  it('accepting the award of an unknown project is NOT_FOUND', () => {
    expect(result(decide(projectMachine, { state: 'new', context: initialProjectContext }, accept('fl')))).toBe('PROJECT_NOT_FOUND');
  });
  it.each([
    ['awarded', 'emp', 'fl', 'unchanged'],
    ['awarded', 'intruder', 'fl', 'NOT_PROJECT_EMPLOYER'],
    ['awarded', 'emp', 'other-fl', 'FREELANCER_NOT_AWARDED'],
    ['awardAccepted', 'emp', 'fl', 'unchanged'],
    ['awardAccepted', 'intruder', 'fl', 'NOT_PROJECT_EMPLOYER'],
    ['awardAccepted', 'emp', 'other-fl', 'FREELANCER_NOT_AWARDED'],
  ])('in %s, a milestone by %s for %s: %s', (state, employer, freelancer, expected) => {
    const at = state === 'awarded' ? awarded : accepted;
    expect(result(decide(projectMachine, at, register(employer, freelancer)))).toBe(expected);
  });
  it.each([
    ['awarded', 'fl', 'awardAccepted'],
    ['awarded', 'emp', 'NOT_FREELANCER'],
    ['awarded', 'stranger', 'NOT_FREELANCER'],
    ['awardAccepted', 'fl', 'AWARD_ALREADY_ACCEPTED'],
    ['awardAccepted', 'emp', 'NOT_FREELANCER'],
  ])('in %s, ACCEPT_AWARD by %s: %s', (state, who, expected) => {
    const at = state === 'awarded' ? awarded : accepted;
    expect(result(decide(projectMachine, at, accept(who)))).toBe(expected);
  });
});
