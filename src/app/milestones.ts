import { MARKETPLACE_ROLE, SYSTEM_CALLER, type Caller } from '../../actors/decision.js';
import {
  isSagaState,
  SAGAS,
  sagaCausation,
  sagaOutcomeEvent,
  sagaFee,
  type SagaState,
  decideMilestone,
  mayView,
  type Funding,
  type MilestoneContext,
  type MilestoneEvent,
} from '../../actors/milestone/index.js';
import { decide } from '../../actors/decide.js';
import { feeOn } from '../../actors/terms.js';
import { rejectionError } from '../runtime/actor.js';
import { Funds } from './funds.js';
import { followChanges } from './follow.js';
import { MILESTONE, PROJECT } from './kinds.js';
import { Sweeps } from './sweeps.js';
import { add } from '../../actors/money.js';
import { isAwardAccepted, projectMachine, type ProjectContext, type ProjectEvent } from '../../actors/project.machine.js';
import { FailedPrecondition, NotFound, PermissionDenied } from '../errors.js';
import type { EventLog } from '../events/log.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import { digest, milestoneIdFor, reservationIdFor, scopedKey } from '../ids.js';
import type { Outcome } from '../events/outcome.js';

export { MILESTONE, PROJECT } from './kinds.js';
import type { Money } from '../../actors/money.js';
import { appliedKey, historyOf, lastHistory, type Command, type EntityEventData, type Persisted } from '../runtime/entity.js';
import { Outcomes } from '../runtime/outcomes.js';
import { Registry } from '../runtime/registry.js';
import { termsFor, type TermsPolicy } from '../../actors/terms.js';
import { retriedLater } from '../log.js';

export interface MilestoneAppOptions {
  log: EventLog;
  mailboxMax: number;
  actorsMax: number;
  actorIdleMs: number;
  fundingWaitMs: number;
  now: () => Date;
  /** Who brings a project into being (ESCROW_PROJECT_AWARDS, src/config.ts). */
  projectAwards?: 'open' | 'marketplace';
  /** The read model, for the sweep of unfinished funding sagas and the timers. */
  pool: Pool;
  /** Fees and dispute windows of new milestones. */
  terms: TermsPolicy;
  /** How often due timers are looked for. */
  timerScanMs: number;
  /** A reservation no milestone consumed for this long is given back (see sweepReservations). */
  reservationTtlMs: number;
  /** Fault injection (tests): wait between an escalation's event and its fee decision. */
  faultFeeDecisionDelayMs?: number;
  /** Fault injection (tests): SIGKILL this process right after a create's or an accept's reservation. */
  faultKillAfterReservation?: boolean;
}

const NO_FUNDING: Funding = { reservationId: '', reserved: '0', fundingFailure: '' };

/** Per-call context from the gateway: who calls, and until when the answer is useful. */
export interface CallContext {
  caller: Caller;
  /** Epoch ms; Infinity when the client set no deadline. */
  deadline: number;
}

const SYSTEM: Caller = { id: SYSTEM_CALLER, roles: [] };

/**
 * The milestone use cases: each turns a validated request into commands for the project and
 * milestone actors. No rule lives here; the machines under actors/ decide.
 */
export class MilestoneApp {
  readonly milestones: Registry<MilestoneContext>;
  readonly projects: Registry<ProjectContext>;
  readonly outcomes: Outcomes;
  readonly log: EventLog;
  /** The account actors: every debit of an available balance is decided there. */
  readonly funds: Funds;
  private readonly registering = new Map<string, Promise<unknown>>();
  private readonly sweeps: Sweeps;
  private unfollow: () => void = () => undefined;

  constructor(private readonly o: MilestoneAppOptions) {
    this.log = o.log;
    const bounds = { log: o.log, mailboxMax: o.mailboxMax, actorsMax: o.actorsMax, actorIdleMs: o.actorIdleMs };
    this.outcomes = new Outcomes(o.log, (outcome) => this.onHoldOutcome(outcome));
    this.milestones = new Registry({ ...bounds, kind: MILESTONE, resume: (state) => this.resumeSaga(state) });
    this.projects = new Registry({ ...bounds, kind: PROJECT });
    // The funding of many milestones of one employer queues at its account: a wider bound than a milestone's.
    this.funds = new Funds({
      log: o.log,
      pool: o.pool,
      mailboxMax: Math.max(1_024, 16 * o.mailboxMax),
      actorsMax: o.actorsMax,
      actorIdleMs: o.actorIdleMs,
    });
    this.sweeps = new Sweeps({ ...o, milestones: this.milestones, funds: this.funds });
  }

  /** Fires the timers that are due now (see Sweeps.fireDueTimers); tests call it by hand. */
  fireDueTimers(): Promise<number> {
    return this.sweeps.fireDueTimers();
  }

  /** Clears the payouts whose clearing time has come (see Sweeps.clearDue); tests call it by hand. */
  clearDue(): Promise<number> {
    return this.sweeps.clearDue();
  }

  /** Gives back reservations no milestone consumed within `ttlMs` (see Sweeps.sweepReservations). */
  sweepReservations(ttlMs?: number): Promise<number> {
    return this.sweeps.sweepReservations(ttlMs);
  }

  start(): void {
    this.outcomes.start();
    this.unfollow = followChanges(this.log, [
      ['milestone', this.milestones],
      ['project', this.projects],
    ]);
    this.sweeps.start();
  }

  stop(): void {
    this.sweeps.stop();
    this.unfollow();
    this.outcomes.stop();
    this.milestones.close();
    this.projects.close();
    this.funds.close();
  }

  private command(ctx: CallContext, key: string, content: object, event: MilestoneEvent | ProjectEvent): Command {
    return { key: scopedKey(ctx.caller.id, key), digest: digest(content), event: { ...event }, deadline: ctx.deadline };
  }

  private at(): string {
    return this.o.now().toISOString();
  }

  /**
   * A milestone command whose request is its payload alone (a reason, a text, a reference):
   * the content its key is bound to is the operation, the milestone and the payload; the
   * machine decides who and when.
   */
  private plain<T extends MilestoneEvent['type']>(
    ctx: CallContext,
    milestoneId: string,
    type: T,
    payload: Omit<Extract<MilestoneEvent, { type: T }>, 'type' | 'by' | 'at'>,
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    const event = { type, by: ctx.caller, at: this.at(), ...payload } as MilestoneEvent;
    return this.milestones.send(milestoneId, this.command(ctx, key, { op: type.toLowerCase(), milestoneId, ...payload }, event));
  }

  async create(
    ctx: CallContext,
    input: {
      projectId: string;
      freelancerId: string;
      money: Money;
      description: string;
      milestoneReason: string;
      reviewWindowMs: number;
      key: string;
    },
  ): Promise<Persisted<MilestoneContext>> {
    const id = milestoneIdFor(ctx.caller.id, input.key);
    const content = {
      op: 'create',
      projectId: input.projectId,
      freelancerId: input.freelancerId,
      money: input.money,
      description: input.description,
      reviewWindowMs: input.reviewWindowMs || undefined,
      // Named only when given, so the keys of creates made before reasons replay as before.
      milestoneReason: input.milestoneReason || undefined,
    };
    const { currency, amount } = input.money;
    const terms = termsFor(this.o.terms, currency, input.reviewWindowMs);
    const create = (funding: Funding): MilestoneEvent => ({
      type: 'CREATE',
      by: ctx.caller,
      at: this.at(),
      milestoneId: id,
      projectId: input.projectId,
      freelancerId: input.freelancerId,
      currency,
      amount,
      description: input.description,
      milestoneReason: input.milestoneReason,
      terms,
      ...funding,
    });
    const existing = await this.milestones.read(id);
    if (existing.version > 0) {
      // The milestone id is the caller's key: a repeat (answered as the first time, or
      // IDEMPOTENCY_KEY_REUSED), or the voided place of a reservation this key made long ago.
      if (!appliedKey(existing, scopedKey(ctx.caller.id, input.key)) && existing.state === 'fundingFailed') {
        throw new FailedPrecondition(
          existing.context.fundingFailureReason || 'FUNDING_FAILED',
          'the reservation of this create expired before the milestone was made; create it again with a new key',
        );
      }
      return this.funded(ctx, id, await this.milestones.send(id, this.command(ctx, input.key, content, create(NO_FUNDING))));
    }
    if (this.o.projectAwards === 'marketplace' && (await this.projects.read(input.projectId)).version === 0) {
      throw new NotFound('PROJECT_NOT_FOUND', 'no such project: the marketplace awards a project before its milestones');
    }
    await this.registerParties(ctx, input.projectId, input.freelancerId);
    const fee = feeOn(terms.employerFee, currency, amount);
    const reservation = { reservationId: reservationIdFor(id, digest(content)), reserved: add(currency, amount, fee), fundingFailure: '' };
    this.mustAccept(existing, create(reservation));
    // The employer's account actor decides the funding; the milestone is created funded (or refused) after it.
    const reserved = await this.funds.reserve(ctx.caller.id, ctx.caller.id, {
      reservationId: reservation.reservationId,
      milestoneId: id,
      projectId: input.projectId,
      freelancerId: input.freelancerId,
      currency,
      amount,
      fee,
      time: this.at(),
    });
    if (this.o.faultKillAfterReservation) process.kill(process.pid, 'SIGKILL');
    const created = await this.milestones.send(
      id,
      this.command(ctx, input.key, content, create(reserved ? reservation : { ...NO_FUNDING, fundingFailure: 'INSUFFICIENT_FUNDS' })),
    );
    return this.funded(ctx, id, created);
  }

  /**
   * The project step of a create: registers the parties, or checks them. The parties of a
   * project never change once registered, so a resident project that already has them
   * answers without a turn through its mailbox (a hot employer's creates would queue there).
   */
  private async registerParties(ctx: CallContext, projectId: string, freelancerId: string, employerId = ctx.caller.id): Promise<void> {
    // Keyed by the parties: the same registration again is a repeat, whoever's call it came with.
    const register = this.command(
      ctx,
      employerId === ctx.caller.id ? `register:${freelancerId}` : `register:${employerId}:${freelancerId}`,
      { op: 'register' },
      { type: 'REGISTER', by: ctx.caller, at: this.at(), projectId, employerId, freelancerId },
    );
    const held = this.projects.peek(projectId)?.current;
    if (held && held.version > 0) {
      const d = decide(projectMachine, { state: held.state, context: held.context }, register.event);
      if (d.kind === 'rejected') throw rejectionError(d.rejection);
      if (d.kind === 'unchanged') return;
    }
    // The same registration asked for at once (a burst of creates on a new project) goes through the mailbox once.
    const k = `${projectId}\u0000${ctx.caller.id}\u0000${employerId}\u0000${freelancerId}`;
    let pending = this.registering.get(k);
    if (!pending) {
      pending = this.projects.send(projectId, register).finally(() => this.registering.delete(k));
      this.registering.set(k, pending);
    }
    await pending;
  }

  /** Refuses a command the milestone's machine would refuse now, before anything is reserved for it. */
  private mustAccept(state: Persisted<MilestoneContext>, event: MilestoneEvent): void {
    // The permission table first, as the actor will ask it: a stranger's accept reserves nothing.
    const d = decideMilestone({ state: state.state, context: state.context }, event);
    if (d.kind === 'rejected') throw rejectionError(d.rejection, state.version);
  }

  /** Answers a command that started the funding saga: once the ledger decided, or PENDING_FUNDING at the wait. */
  private async funded(ctx: CallContext, id: string, state: Persisted<MilestoneContext>): Promise<Persisted<MilestoneContext>> {
    const settled =
      state.state === 'pendingFunding'
        ? await this.awaitSaga(id, state, Math.min(Date.now() + this.o.fundingWaitMs, ctx.deadline - 50))
        : state;
    if (settled.state === 'fundingFailed') {
      // A repeat of a refused create (or accept) gets the same refusal.
      throw new FailedPrecondition(
        settled.context.fundingFailureReason || 'FUNDING_FAILED',
        'the employer balance could not fund the milestone',
      );
    }
    return settled;
  }

  async requestMilestone(
    ctx: CallContext,
    input: { projectId: string; employerId: string; money: Money; description: string; milestoneReason: string; key: string },
  ): Promise<Persisted<MilestoneContext>> {
    const id = milestoneIdFor(ctx.caller.id, input.key, 'request');
    const content = {
      op: 'request',
      projectId: input.projectId,
      employerId: input.employerId,
      money: input.money,
      description: input.description,
      milestoneReason: input.milestoneReason || undefined,
    };
    const existing = await this.milestones.read(id);
    if (!appliedKey(existing, scopedKey(ctx.caller.id, input.key))) {
      await this.projects.send(
        input.projectId,
        this.command(
          ctx,
          `check-request:${input.employerId}`,
          { op: 'check_request' },
          { type: 'CHECK_REQUEST', by: ctx.caller, at: this.at(), employerId: input.employerId },
        ),
      );
    }
    return this.milestones.send(
      id,
      this.command(ctx, input.key, content, {
        type: 'REQUEST',
        by: ctx.caller,
        at: this.at(),
        milestoneId: id,
        projectId: input.projectId,
        employerId: input.employerId,
        currency: input.money.currency,
        amount: input.money.amount,
        description: input.description,
        milestoneReason: input.milestoneReason,
        terms: termsFor(this.o.terms, input.money.currency, 0),
      }),
    );
  }

  async acceptRequest(ctx: CallContext, milestoneId: string, reviewWindowMs: number, key: string): Promise<Persisted<MilestoneContext>> {
    // Without a window the content is what it was before windows on accepts, so older keys replay as before.
    const content = { op: 'accept_request', milestoneId, ...(reviewWindowMs > 0 ? { reviewWindowMs } : {}) };
    const accept = (funding: Funding): MilestoneEvent => ({
      type: 'ACCEPT_REQUEST',
      by: ctx.caller,
      at: this.at(),
      reviewWindowMs,
      ...funding,
    });
    const existing = await this.milestones.read(milestoneId);
    const scoped = scopedKey(ctx.caller.id, key);
    if (appliedKey(existing, scoped))
      return this.funded(ctx, milestoneId, await this.milestones.send(milestoneId, this.command(ctx, key, content, accept(NO_FUNDING))));
    // Anywhere but in `requested` the machine refuses the accept whatever its funding.
    if (existing.state !== 'requested') this.mustAccept(existing, accept(NO_FUNDING));
    const c = existing.context;
    const reservation = {
      reservationId: reservationIdFor(milestoneId, `accept\u0000${scoped}`),
      reserved: add(c.currency, c.amount, c.employerFee),
      fundingFailure: '',
    };
    this.mustAccept(existing, accept(reservation));
    const reserved = await this.funds.reserve(ctx.caller.id, ctx.caller.id, {
      reservationId: reservation.reservationId,
      milestoneId,
      projectId: c.projectId,
      freelancerId: c.freelancerId,
      currency: c.currency,
      amount: c.amount,
      fee: c.employerFee,
      time: this.at(),
    });
    if (this.o.faultKillAfterReservation) process.kill(process.pid, 'SIGKILL');
    const accepted = await this.milestones.send(
      milestoneId,
      this.command(ctx, key, content, accept(reserved ? reservation : { ...NO_FUNDING, fundingFailure: 'INSUFFICIENT_FUNDS' })),
    );
    return this.funded(ctx, milestoneId, accepted);
  }

  /** Commands with no payload beyond the milestone: the machine decides them all. */
  simple(
    ctx: CallContext,
    milestoneId: string,
    type: 'REJECT_REQUEST' | 'WITHDRAW_REQUEST' | 'REJECT_CANCELLATION' | 'REQUEST_RELEASE' | 'WITHDRAW_DISPUTE' | 'ACCEPT_CLAIM',
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    return this.plain(ctx, milestoneId, type, {}, key);
  }

  /** AttachEvidence (a party, while the dispute is open). */
  attachEvidence(
    ctx: CallContext,
    milestoneId: string,
    ref: { uri: string; sha256: string; note: string },
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    return this.plain(ctx, milestoneId, 'ATTACH_EVIDENCE', ref, key);
  }

  /** UpdateMilestoneDescription (the employer): the history keeps the previous text. */
  updateDescription(ctx: CallContext, milestoneId: string, description: string, key: string): Promise<Persisted<MilestoneContext>> {
    return this.plain(ctx, milestoneId, 'UPDATE_DESCRIPTION', { description }, key);
  }

  /** Commands that carry a reason only: RequestChanges (the employer), Freeze and Unfreeze (support staff). The machine decides who and when. */
  withReason(
    ctx: CallContext,
    milestoneId: string,
    type: 'FREEZE' | 'UNFREEZE' | 'REQUEST_CHANGES',
    reason: string,
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    return this.plain(ctx, milestoneId, type, { reason }, key);
  }

  /** Waits until the saga the milestone is in (funding, escalation) moved it on, or the wait ends. */
  private async awaitSaga(id: string, current: Persisted<MilestoneContext>, until: number): Promise<Persisted<MilestoneContext>> {
    const waitingIn = current.state;
    const actor = this.milestones.get(id);
    let latest = current;
    let unsubscribe = () => {};
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, until - Date.now()));
      unsubscribe = actor.subscribe((s) => {
        latest = s;
        if (s.state !== waitingIn) {
          clearTimeout(timer);
          resolve();
        }
      });
      if (actor.current && actor.current.state !== waitingIn) {
        latest = actor.current;
        clearTimeout(timer);
        resolve();
      }
    });
    unsubscribe();
    if (latest.state !== waitingIn) return latest;
    // The live outcome may have been missed: one last look at the stream.
    const step = await this.resumeSaga(latest).catch(() => null);
    return step ? this.milestones.send(id, step) : latest;
  }

  /**
   * A live ledger outcome (a funding hold, an arbitration fee) for a milestone this gateway
   * holds goes through the actor's mailbox, behind the command that asked for it: it may
   * arrive before that command's append is acknowledged, and is then applied right after.
   * A milestone that is not resident resumes its saga from the stream whenever it is loaded.
   */
  private onHoldOutcome(outcome: Outcome): void {
    if (!outcome.milestoneId) return;
    const actor = this.milestones.peek(outcome.milestoneId);
    if (!actor) return;
    actor
      .sendStep((state) =>
        isSagaState(state.state) && outcome.causationId === sagaEventId(state) ? sagaCommand(state.state, outcome, this.at()) : null,
      )
      // The saga step is also taken by the next load of the milestone (and the sweep).
      .catch(retriedLater(`the saga step of ${outcome.milestoneId} on its ledger outcome`));
  }

  /**
   * The step a milestone waiting in a saga takes next. An arbitration fee (the escalating
   * party's, or the other party's second fee) is decided by its payer's account actor (the
   * same decision whoever asks: it is recorded under one event id); a saga of an earlier
   * version waits for the ledger's outcome, applied once it exists.
   */
  private async resumeSaga(state: Persisted<MilestoneContext>): Promise<Command | null> {
    if (!isSagaState(state.state)) return null;
    const causationId = sagaEventId(state);
    const asked = lastHistory(state);
    const d = state.context.dispute;
    const fee = d && sagaFee(state.state, d);
    if (fee && causationId !== '' && asked?.data && (asked.data as { funding?: string }).funding === 'account') {
      const paid = await this.funds.reserveFee(fee.payerId, {
        milestoneId: state.id,
        causationId,
        currency: state.context.currency,
        amount: fee.amount,
        time: this.at(),
      });
      return sagaCommand(state.state, { causationId, result: paid ? 'ok' : 'insufficient_funds' }, this.at());
    }
    const outcome = await this.outcomes.lookup(causationId);
    return outcome ? sagaCommand(state.state, outcome, this.at()) : null;
  }

  async get(ctx: CallContext, milestoneId: string): Promise<Persisted<MilestoneContext>> {
    const state = await this.milestones.read(milestoneId);
    if (state.version === 0) throw new NotFound('MILESTONE_NOT_FOUND', 'no such milestone');
    if (!mayView(state.context, ctx.caller)) throw new PermissionDenied('NOT_PARTY', 'caller is not a party of this milestone');
    return state;
  }

  /**
   * Registers a project with its employer and awarded freelancer before any milestone: by the
   * employer itself, or for `employerId` by a caller with the marketplace role. Idempotent by
   * its key (a key reused for other parties is IDEMPOTENCY_KEY_REUSED), and the same parties
   * under another key change nothing; other parties are refused as a milestone's registration
   * would be (NOT_PROJECT_EMPLOYER, FREELANCER_NOT_AWARDED).
   */
  async awardProject(
    ctx: CallContext,
    input: { projectId: string; freelancerId: string; employerId: string | null; key: string },
  ): Promise<Persisted<ProjectContext>> {
    const employerId = input.employerId ?? ctx.caller.id;
    const marketplace = ctx.caller.roles.includes(MARKETPLACE_ROLE);
    if (employerId !== ctx.caller.id && !marketplace) {
      throw new PermissionDenied('MARKETPLACE_ROLE_REQUIRED', 'only a marketplace service awards a project for another employer');
    }
    if (this.o.projectAwards === 'marketplace' && !marketplace) {
      // Its employer may repeat the award of a registered project (a no-op); only the marketplace registers one.
      const known = await this.projects.read(input.projectId);
      if (known.version === 0) throw new PermissionDenied('MARKETPLACE_ROLE_REQUIRED', 'projects are awarded by the marketplace here');
    }
    // The call's own key, like every command: a repeat answers the same, the key reused for other parties is refused.
    const { projectId, freelancerId } = input;
    const register = this.command(
      ctx,
      input.key,
      { op: 'award', projectId, employerId, freelancerId },
      { type: 'REGISTER', by: ctx.caller, at: this.at(), projectId, employerId, freelancerId },
    );
    return this.projects.send(projectId, register);
  }

  /** A project, for its parties and the marketplace role. */
  async getProject(ctx: CallContext, projectId: string): Promise<Persisted<ProjectContext>> {
    const state = await this.projects.read(projectId);
    if (state.version === 0) throw new NotFound('PROJECT_NOT_FOUND', 'no such project');
    const c = state.context;
    if (ctx.caller.id !== c.employerId && ctx.caller.id !== c.freelancerId && !ctx.caller.roles.includes(MARKETPLACE_ROLE)) {
      throw new PermissionDenied('NOT_PARTY', 'caller is not a party of this project');
    }
    return state;
  }

  async acceptAward(ctx: CallContext, projectId: string, key: string): Promise<Persisted<ProjectContext>> {
    return this.projects.send(
      projectId,
      this.command(ctx, key, { op: 'accept_award', projectId }, { type: 'ACCEPT_AWARD', by: ctx.caller, at: this.at() }),
    );
  }

  release(ctx: CallContext, milestoneId: string, money: Money | null, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(
        ctx,
        key,
        { op: 'release', milestoneId, money },
        {
          type: 'RELEASE',
          by: ctx.caller,
          at: this.at(),
          amount: money?.amount ?? '',
          currency: money?.currency ?? '',
        },
      ),
    );
  }

  requestCancellation(
    ctx: CallContext,
    milestoneId: string,
    reasonCode: string,
    reason: string,
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    return this.plain(ctx, milestoneId, 'REQUEST_CANCELLATION', { reasonCode, reason }, key);
  }

  async cancel(
    ctx: CallContext,
    milestoneId: string,
    reasonCode: string,
    reason: string,
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    // The parties and the project never change: a resident state tells them without a turn
    // through the mailbox, so a cancel is queued as soon as a release sent with it.
    const milestone = this.milestones.peek(milestoneId)?.current ?? (await this.milestones.read(milestoneId));
    // The award may have been accepted through another gateway: read the project from the
    // log, not from a resident actor. Only the employer's right depends on it.
    let awardAccepted = true;
    if (milestone.version > 0 && ctx.caller.id === milestone.context.employerId) {
      const project = await this.o.log.readLast<EntityEventData<ProjectContext>>(this.o.log.names.project(milestone.context.projectId));
      awardAccepted = project ? isAwardAccepted(project.event.data.state.state) : false;
    }
    return this.milestones.send(
      milestoneId,
      this.command(
        ctx,
        key,
        { op: 'cancel', milestoneId, reasonCode: reasonCode || undefined, reason },
        {
          type: 'CANCEL',
          by: ctx.caller,
          at: this.at(),
          reasonCode,
          reason,
          awardAccepted,
        },
      ),
    );
  }

  openDispute(ctx: CallContext, milestoneId: string, reason: string, claim: Money, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(
        ctx,
        key,
        { op: 'open_dispute', milestoneId, reason, claim },
        {
          type: 'OPEN_DISPUTE',
          by: ctx.caller,
          at: this.at(),
          reason,
          currency: claim.currency,
          claim: claim.amount,
        },
      ),
    );
  }

  /** ProposeSettlement (a party) and ResolveDispute (an arbiter): a split of what is held. */
  split(
    ctx: CallContext,
    milestoneId: string,
    type: 'PROPOSE_SETTLEMENT' | 'RESOLVE',
    freelancerAmount: Money,
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(
        ctx,
        key,
        { op: type.toLowerCase(), milestoneId, freelancerAmount },
        {
          type,
          by: ctx.caller,
          at: this.at(),
          currency: freelancerAmount.currency,
          freelancerAmount: freelancerAmount.amount,
        },
      ),
    );
  }

  acceptSettlement(ctx: CallContext, milestoneId: string, expected: Money | null, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(
        ctx,
        key,
        { op: 'accept_settlement', milestoneId, expected },
        {
          type: 'ACCEPT_SETTLEMENT',
          by: ctx.caller,
          at: this.at(),
          expectedFreelancerAmount: expected?.amount ?? '',
          expectedCurrency: expected?.currency ?? '',
        },
      ),
    );
  }

  /**
   * Escalates to arbitration (ESCALATE), or pays the other party's arbitration fee when the
   * terms ask both (PAY_ARBITRATION_FEE); with a fee, answers once the payer's account held it,
   * or refuses (INSUFFICIENT_FUNDS). The answer is this command's own outcome, found in the
   * history after its event, so a replay of a refused attempt is refused again even while
   * another is under way.
   */
  async payFee(
    ctx: CallContext,
    milestoneId: string,
    type: 'ESCALATE' | 'PAY_ARBITRATION_FEE',
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    const how = FEE_COMMANDS[type];
    // The fact the machine checks the fee against: the caller's available balance, from the read
    // model ('' when it cannot be read: the ledger decides alone).
    const milestone = await this.milestones.read(milestoneId);
    const balance =
      milestone.version > 0
        ? await read.balanceOf(this.o.pool, ctx.caller.id, milestone.context.currency).catch(() => undefined)
        : undefined;
    const available = balance === undefined ? '' : (balance?.available ?? '0');
    const sent = await this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: how.op, milestoneId }, { type, by: ctx.caller, at: this.at(), available }),
    );
    const own = appliedKey(sent, scopedKey(ctx.caller.id, key))?.version ?? 0;
    const outcome = (s: Persisted<MilestoneContext>) =>
      historyOf(s).find((h) => h.version > own && (how.outcomes as readonly string[]).includes(h.type));
    const ownType = historyOf(sent).find((h) => h.version === own)?.type ?? '';
    const asked = (SAGAS[how.saga].asked as readonly string[]).includes(ownType);
    let settled = sent;
    if (asked && !outcome(sent) && sent.state === how.saga) {
      // The escalator's account actor decides the fee (or, for an earlier version's event, the ledger does).
      if (this.o.faultFeeDecisionDelayMs) await new Promise((resolve) => setTimeout(resolve, this.o.faultFeeDecisionDelayMs));
      const step = await this.resumeSaga(sent);
      settled = step ? await this.milestones.send(milestoneId, step).catch(() => this.milestones.read(milestoneId)) : sent;
      if (settled.state === how.saga)
        settled = await this.awaitSaga(milestoneId, settled, Math.min(Date.now() + this.o.fundingWaitMs, ctx.deadline - 50));
    }
    const result = asked ? outcome(settled) : undefined;
    if (result?.type === how.failed) {
      throw new FailedPrecondition(
        String(result.data.reason || 'ESCALATION_FAILED'),
        "the paying party's available balance could not pay the arbitration fee",
      );
    }
    return settled;
  }
}

/**
 * The two commands that charge an arbitration fee: its saga state (whose asking event is in
 * SAGAS), the events that end it and the failure among them, and the idempotency scope of the call.
 */
const FEE_COMMANDS = {
  ESCALATE: {
    op: 'escalate',
    saga: 'escalating',
    outcomes: ['escalated', 'arbitration_fee_due', 'escalation_failed'],
    failed: 'escalation_failed',
  },
  PAY_ARBITRATION_FEE: {
    op: 'pay_arbitration_fee',
    saga: 'payingFee',
    outcomes: ['escalated', 'arbitration_fee_failed'],
    failed: 'arbitration_fee_failed',
  },
} as const;

/**
 * The id of the event that asked for the outcome the milestone waits for (a hold, or an
 * arbitration fee): the causation id (actors/milestone/sagas.ts).
 */
export function sagaEventId(state: Persisted<MilestoneContext>): string {
  const last = lastHistory(state);
  return sagaCausation(state.state, last && { type: last.type, id: state.lastEventId });
}

/** The saga step an outcome becomes, keyed by the event that asked for it (so each saga step is applied once). */
function sagaCommand(state: SagaState, outcome: Pick<Outcome, 'causationId' | 'result'>, at: string): Command {
  const event = sagaOutcomeEvent(state, outcome.result, SYSTEM, at);
  return { key: scopedKey(SYSTEM_CALLER, `outcome:${outcome.causationId}`), digest: digest({ result: outcome.result }), event };
}
