import { SYSTEM_CALLER, type Caller } from '../../actors/decision.js';
import { DISPUTE_STATES, FINAL_STATES, initialMilestoneContext, mayView, milestoneMachine, type MilestoneContext, type MilestoneEvent } from '../../actors/milestone.machine.js';
import { initialProjectContext, isAwardAccepted, projectMachine, type ProjectContext, type ProjectEvent } from '../../actors/project.machine.js';
import { FailedPrecondition, NotFound, PermissionDenied } from '../errors.js';
import type { Subscription } from '@nats-io/transport-node';
import { VERSION_HEADER, type EventLog } from '../events/log.js';
import { SIGNATURE_HEADER } from '../events/signing.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import { digest, milestoneIdFor, scopedKey } from '../ids.js';
import type { Outcome } from '../ledger/apply.js';
import type { Money } from '../money.js';
import { appliedKey, type Command, type EntityEventData, type EntityKind, type Persisted } from '../runtime/entity.js';
import { Outcomes } from '../runtime/outcomes.js';
import { Registry } from '../runtime/registry.js';
import { termsFor, type TermsPolicy } from '../../actors/terms.js';

export const MILESTONE: EntityKind<MilestoneContext> = {
  entity: 'milestone',
  machine: milestoneMachine,
  initial: { state: 'new', context: initialMilestoneContext },
  finalStates: FINAL_STATES,
  boundedStates: DISPUTE_STATES,
  // The terms are copied into every milestone at creation, alike for all made under one policy.
  sharedContext: ['terms'],
};

export const PROJECT: EntityKind<ProjectContext> = {
  entity: 'project',
  machine: projectMachine,
  initial: { state: 'new', context: initialProjectContext },
  finalStates: new Set(['awardAccepted']),
};

export interface MilestoneAppOptions {
  log: EventLog;
  mailboxMax: number;
  actorsMax: number;
  actorIdleMs: number;
  fundingWaitMs: number;
  now: () => Date;
  /** The read model, for the sweep of unfinished funding sagas and the timers. */
  pool?: Pool;
  /** Fees and dispute windows of new milestones. */
  terms: TermsPolicy;
  /** How often due timers are looked for. */
  timerScanMs: number;
}

const SWEEP_EVERY_MS = 2_000;
const SWEEP_AFTER_MS = 3_000;
const SWEEP_BATCH_MAX = 100;

/** Per-call context from the gateway: who calls, and until when the answer is useful. */
export interface CallContext {
  caller: Caller;
  /** Epoch ms; Infinity when the client set no deadline. */
  deadline: number;
}

const TIMER_BATCH_MAX = 200;
const SYSTEM: Caller = { id: SYSTEM_CALLER, roles: [] };

/**
 * The sagas of a milestone: a state that waits for the ledger, the event that asked it (the
 * causation of the outcome), and the commands the outcome becomes.
 */
const SAGAS = {
  pendingFunding: { asked: ['created', 'request_accepted'], ok: 'FUNDING_SUCCEEDED', failed: 'FUNDING_FAILED' },
  escalating: { asked: ['escalation_requested'], ok: 'ESCALATION_SUCCEEDED', failed: 'ESCALATION_FAILED' },
} as const;
type SagaState = keyof typeof SAGAS;
const isSagaState = (state: string): state is SagaState => state in SAGAS;

/**
 * The milestone use cases: each turns a validated request into commands for the project and
 * milestone actors. No rule lives here; the machines under actors/ decide.
 */
export class MilestoneApp {
  readonly milestones: Registry<MilestoneContext>;
  readonly projects: Registry<ProjectContext>;
  readonly outcomes: Outcomes;
  readonly log: EventLog;
  private readonly subscriptions: Subscription[] = [];
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private timers: NodeJS.Timeout | null = null;
  private firing = false;

  constructor(private readonly o: MilestoneAppOptions) {
    this.log = o.log;
    const bounds = { log: o.log, mailboxMax: o.mailboxMax, actorsMax: o.actorsMax, actorIdleMs: o.actorIdleMs };
    this.outcomes = new Outcomes(o.log, (outcome) => this.onHoldOutcome(outcome));
    this.milestones = new Registry({ ...bounds, kind: MILESTONE, resume: (state) => this.resumeSaga(state) });
    this.projects = new Registry({ ...bounds, kind: PROJECT });
  }

  start(): void {
    this.outcomes.start();
    // Changes made through other gateways: resident actors that fall behind reload.
    const ns = this.log.names.namespace;
    for (const [entity, registry] of [['milestone', this.milestones], ['project', this.projects]] as const) {
      this.subscriptions.push(
        this.log.nc.subscribe(`${ns}.${entity}.>`, {
          callback: (err, msg) => {
            if (err) return;
            if (!this.log.verified(msg.subject, msg.data, msg.headers?.get(SIGNATURE_HEADER))) return;
            const actor = registry.peek(msg.subject.slice(ns.length + entity.length + 2));
            if (!actor) return;
            const version = Number(msg.headers?.get(VERSION_HEADER));
            if (Number.isInteger(version) && version > 0) actor.observe(version);
            else actor.invalidate();
          },
        }),
      );
    }
    void (async () => {
      for await (const s of this.log.nc.status()) {
        if (s.type === 'reconnect') {
          this.milestones.invalidateAll();
          this.projects.invalidateAll();
        }
      }
    })();
    if (this.o.pool) {
      this.sweeper = setInterval(() => void this.sweepPendingFunding(), SWEEP_EVERY_MS);
      this.sweeper.unref();
      this.timers = setInterval(() => void this.fireDueTimers().catch(() => {}), this.o.timerScanMs);
      this.timers.unref();
    }
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.timers) clearInterval(this.timers);
    for (const sub of this.subscriptions) sub.unsubscribe();
    this.outcomes.stop();
    this.milestones.close();
    this.projects.close();
  }

  /**
   * Finishes funding sagas nobody is waiting for (the creating gateway died, or its answer
   * was PENDING_FUNDING): loading such a milestone applies the ledger's outcome. Any gateway
   * may do it; the idempotent saga step makes repeats harmless.
   */
  private async sweepPendingFunding(): Promise<void> {
    if (this.sweeping || !this.o.pool) return;
    this.sweeping = true;
    try {
      for (const id of await read.staleSagas(this.o.pool, SWEEP_AFTER_MS, SWEEP_BATCH_MAX)) {
        this.milestones.peek(id)?.invalidate();
        await this.milestones.read(id).catch(() => {});
      }
    } catch {
      // The database is down: the next sweep tries again.
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Fires the timers that are due (dispute response deadlines, auto-release): each becomes a
   * DEADLINE command through the milestone's actor, like any other command. Every gateway and
   * worker runs this; the command's key names the timer, so whoever fires it first appends the
   * event and every other attempt is a replay (same key) or refused (the state moved on): a
   * timer fires once. Returns how many timers were fired by this call.
   */
  async fireDueTimers(): Promise<number> {
    if (this.firing || !this.o.pool) return 0;
    this.firing = true;
    let fired = 0;
    try {
      const now = this.o.now();
      for (const due of await read.dueTimers(this.o.pool, now, TIMER_BATCH_MAX)) {
        const key = scopedKey(SYSTEM_CALLER, `deadline:${due.dueAt.toISOString()}`);
        const before = this.milestones.peek(due.id)?.current?.version;
        const after = await this.milestones
          .send(due.id, { key, digest: digest({ op: 'deadline' }), event: { type: 'DEADLINE', by: SYSTEM, at: now.toISOString() } })
          .catch(() => null);
        if (after && after.version !== before && after.history.at(-1)?.by === SYSTEM_CALLER) fired++;
      }
    } finally {
      this.firing = false;
    }
    return fired;
  }

  private command<E extends MilestoneEvent | ProjectEvent>(ctx: CallContext, key: string, content: object, event: E): Command {
    return { key: scopedKey(ctx.caller.id, key), digest: digest(content), event: { ...event }, deadline: ctx.deadline };
  }

  private at(): string {
    return this.o.now().toISOString();
  }

  async create(
    ctx: CallContext,
    input: { projectId: string; freelancerId: string; money: Money; description: string; reviewWindowMs: number; key: string },
  ): Promise<Persisted<MilestoneContext>> {
    const id = milestoneIdFor(ctx.caller.id, input.key);
    const content = {
      op: 'create',
      projectId: input.projectId,
      freelancerId: input.freelancerId,
      money: input.money,
      description: input.description,
      reviewWindowMs: input.reviewWindowMs || undefined,
    };
    const existing = await this.milestones.read(id);
    // A repeat skips the project step, so reusing a key for other content changes nothing.
    if (!appliedKey(existing, scopedKey(ctx.caller.id, input.key))) {
      await this.projects.send(
        input.projectId,
        this.command(ctx, `register:${input.freelancerId}`, { op: 'register' }, {
          type: 'REGISTER',
          by: ctx.caller,
          at: this.at(),
          projectId: input.projectId,
          freelancerId: input.freelancerId,
        }),
      );
    }
    const created = await this.milestones.send(
      id,
      this.command(ctx, input.key, content, {
        type: 'CREATE',
        by: ctx.caller,
        at: this.at(),
        milestoneId: id,
        projectId: input.projectId,
        freelancerId: input.freelancerId,
        currency: input.money.currency,
        amount: input.money.amount,
        description: input.description,
        terms: termsFor(this.o.terms, input.money.currency, input.reviewWindowMs),
      }),
    );
    return this.funded(ctx, id, created);
  }

  /** Answers a command that started the funding saga: once the ledger decided, or PENDING_FUNDING at the wait. */
  private async funded(ctx: CallContext, id: string, state: Persisted<MilestoneContext>): Promise<Persisted<MilestoneContext>> {
    const settled = state.state === 'pendingFunding' ? await this.awaitSaga(id, state, Math.min(Date.now() + this.o.fundingWaitMs, ctx.deadline - 50)) : state;
    if (settled.state === 'fundingFailed') {
      // A repeat of a refused create (or accept) gets the same refusal.
      throw new FailedPrecondition(settled.context.fundingFailureReason || 'FUNDING_FAILED', 'the employer balance could not fund the milestone');
    }
    return settled;
  }

  async requestMilestone(
    ctx: CallContext,
    input: { projectId: string; employerId: string; money: Money; description: string; key: string },
  ): Promise<Persisted<MilestoneContext>> {
    const id = milestoneIdFor(ctx.caller.id, input.key, 'request');
    const content = { op: 'request', projectId: input.projectId, employerId: input.employerId, money: input.money, description: input.description };
    const existing = await this.milestones.read(id);
    if (!appliedKey(existing, scopedKey(ctx.caller.id, input.key))) {
      await this.projects.send(
        input.projectId,
        this.command(ctx, `check-request:${input.employerId}`, { op: 'check_request' }, { type: 'CHECK_REQUEST', by: ctx.caller, at: this.at(), employerId: input.employerId }),
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
        terms: termsFor(this.o.terms, input.money.currency, 0),
      }),
    );
  }

  async acceptRequest(ctx: CallContext, milestoneId: string, key: string): Promise<Persisted<MilestoneContext>> {
    const accepted = await this.milestones.send(milestoneId, this.command(ctx, key, { op: 'accept_request', milestoneId }, { type: 'ACCEPT_REQUEST', by: ctx.caller, at: this.at() }));
    return this.funded(ctx, milestoneId, accepted);
  }

  /** Commands with no payload beyond the milestone: the machine decides them all. */
  simple(
    ctx: CallContext,
    milestoneId: string,
    type: 'REJECT_REQUEST' | 'WITHDRAW_REQUEST' | 'REJECT_CANCELLATION' | 'REQUEST_RELEASE',
    key: string,
  ): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(milestoneId, this.command(ctx, key, { op: type.toLowerCase(), milestoneId }, { type, by: ctx.caller, at: this.at() }));
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
      .sendStep((state) => (isSagaState(state.state) && outcome.causationId === sagaEventId(state) ? sagaCommand(state, outcome, this.at()) : null))
      .catch(() => {});
  }

  /** After loading a milestone that waits for the ledger, applies the outcome if the ledger has decided. */
  private async resumeSaga(state: Persisted<MilestoneContext>): Promise<Command | null> {
    if (!isSagaState(state.state)) return null;
    const outcome = await this.outcomes.lookup(sagaEventId(state));
    return outcome ? sagaCommand(state, outcome, this.at()) : null;
  }

  async get(ctx: CallContext, milestoneId: string): Promise<Persisted<MilestoneContext>> {
    const state = await this.milestones.read(milestoneId);
    if (state.version === 0) throw new NotFound('MILESTONE_NOT_FOUND', 'no such milestone');
    if (!mayView(state.context, ctx.caller)) throw new PermissionDenied('NOT_PARTY', 'caller is not a party of this milestone');
    return state;
  }

  async acceptAward(ctx: CallContext, projectId: string, key: string): Promise<Persisted<ProjectContext>> {
    return this.projects.send(projectId, this.command(ctx, key, { op: 'accept_award', projectId }, { type: 'ACCEPT_AWARD', by: ctx.caller, at: this.at() }));
  }

  release(ctx: CallContext, milestoneId: string, money: Money | null, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'release', milestoneId, money }, {
        type: 'RELEASE',
        by: ctx.caller,
        at: this.at(),
        amount: money?.amount ?? '',
        currency: money?.currency ?? '',
      }),
    );
  }

  requestCancellation(ctx: CallContext, milestoneId: string, reasonCode: string, reason: string, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'request_cancellation', milestoneId, reasonCode, reason }, { type: 'REQUEST_CANCELLATION', by: ctx.caller, at: this.at(), reasonCode, reason }),
    );
  }

  async cancel(ctx: CallContext, milestoneId: string, reasonCode: string, reason: string, key: string): Promise<Persisted<MilestoneContext>> {
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
      this.command(ctx, key, { op: 'cancel', milestoneId, reasonCode: reasonCode || undefined, reason }, {
        type: 'CANCEL',
        by: ctx.caller,
        at: this.at(),
        reasonCode,
        reason,
        awardAccepted,
      }),
    );
  }

  openDispute(ctx: CallContext, milestoneId: string, reason: string, claim: Money, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'open_dispute', milestoneId, reason, claim }, {
        type: 'OPEN_DISPUTE',
        by: ctx.caller,
        at: this.at(),
        reason,
        currency: claim.currency,
        claim: claim.amount,
      }),
    );
  }

  /** ProposeSettlement (a party) and ResolveDispute (an arbiter): a split of what is held. */
  split(ctx: CallContext, milestoneId: string, type: 'PROPOSE_SETTLEMENT' | 'RESOLVE', freelancerAmount: Money, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: type.toLowerCase(), milestoneId, freelancerAmount }, {
        type,
        by: ctx.caller,
        at: this.at(),
        currency: freelancerAmount.currency,
        freelancerAmount: freelancerAmount.amount,
      }),
    );
  }

  acceptSettlement(ctx: CallContext, milestoneId: string, expected: Money | null, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'accept_settlement', milestoneId, expected }, {
        type: 'ACCEPT_SETTLEMENT',
        by: ctx.caller,
        at: this.at(),
        expectedFreelancerAmount: expected?.amount ?? '',
        expectedCurrency: expected?.currency ?? '',
      }),
    );
  }

  /**
   * Escalates to arbitration; with an arbitration fee, answers once the ledger held it, or
   * refuses (INSUFFICIENT_FUNDS). The answer is this command's own outcome, found in the
   * history after its event, so a replay of a refused escalation is refused again even while
   * another escalation is under way.
   */
  async escalate(ctx: CallContext, milestoneId: string, key: string): Promise<Persisted<MilestoneContext>> {
    // The fact the machine checks the fee against: the caller's available balance, from the read
    // model ('' when it cannot be read: the ledger decides alone).
    const milestone = await this.milestones.read(milestoneId);
    const balance = this.o.pool && milestone.version > 0 ? await read.balanceOf(this.o.pool, ctx.caller.id, milestone.context.currency).catch(() => undefined) : undefined;
    const available = balance === undefined ? '' : (balance?.available ?? '0');
    const sent = await this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'escalate', milestoneId }, { type: 'ESCALATE', by: ctx.caller, at: this.at(), available }),
    );
    const own = appliedKey(sent, scopedKey(ctx.caller.id, key))?.version ?? 0;
    const outcome = (s: Persisted<MilestoneContext>) => s.history.find((h) => h.version > own && (h.type === 'escalated' || h.type === 'escalation_failed'));
    const asked = sent.history.find((h) => h.version === own)?.type === 'escalation_requested';
    const settled = asked && !outcome(sent) && sent.state === 'escalating' ? await this.awaitSaga(milestoneId, sent, Math.min(Date.now() + this.o.fundingWaitMs, ctx.deadline - 50)) : sent;
    const result = asked ? outcome(settled) : undefined;
    if (result?.type === 'escalation_failed') {
      throw new FailedPrecondition(String(result.data.reason || 'ESCALATION_FAILED'), 'the escalating party\'s available balance could not pay the arbitration fee');
    }
    return settled;
  }

  isFinal(state: Persisted<MilestoneContext>): boolean {
    return FINAL_STATES.has(state.state);
  }
}

/**
 * The id of the event that asked the ledger for the outcome the milestone waits for (a hold,
 * or an arbitration fee): the causation id. In a saga state nothing but the outcome is
 * accepted, so the asking event is the last one.
 */
export function sagaEventId(state: Persisted<MilestoneContext>): string {
  const asked: readonly string[] = isSagaState(state.state) ? SAGAS[state.state].asked : SAGAS.pendingFunding.asked;
  const last = state.history.at(-1);
  return last && asked.includes(last.type) ? state.lastEventId : '';
}

/** The saga step an outcome of the ledger becomes, keyed by the event that asked for it (so each saga step is applied once). */
function sagaCommand(state: Persisted<MilestoneContext>, outcome: Outcome, at: string): Command {
  const saga = SAGAS[state.state as SagaState];
  const event =
    outcome.result === 'ok'
      ? { type: saga.ok, by: SYSTEM, at }
      : { type: saga.failed, by: SYSTEM, at, reason: outcome.result.toUpperCase() };
  return { key: scopedKey(SYSTEM_CALLER, `outcome:${outcome.causationId}`), digest: digest({ result: outcome.result }), event };
}
