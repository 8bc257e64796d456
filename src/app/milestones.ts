import { SYSTEM_CALLER, type Caller } from '../../actors/decision.js';
import { FINAL_STATES, initialMilestoneContext, mayView, milestoneMachine, type MilestoneContext, type MilestoneEvent } from '../../actors/milestone.machine.js';
import { initialProjectContext, isAwardAccepted, projectMachine, type ProjectContext, type ProjectEvent } from '../../actors/project.machine.js';
import { FailedPrecondition, NotFound, PermissionDenied } from '../errors.js';
import type { Subscription } from '@nats-io/transport-node';
import { VERSION_HEADER, type EventLog } from '../events/log.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import { digest, eventId, milestoneIdFor, scopedKey } from '../ids.js';
import type { Outcome } from '../ledger/apply.js';
import type { Money } from '../money.js';
import type { Command, EntityEventData, EntityKind, Persisted } from '../runtime/entity.js';
import { Outcomes } from '../runtime/outcomes.js';
import { Registry } from '../runtime/registry.js';

export const MILESTONE: EntityKind<MilestoneContext> = {
  entity: 'milestone',
  machine: milestoneMachine,
  initial: { state: 'new', context: initialMilestoneContext },
  finalStates: FINAL_STATES,
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
  /** The read model, for the sweep of unfinished funding sagas. */
  pool?: Pool;
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

const FUNDING_OUTCOME_KEY = scopedKey(SYSTEM_CALLER, 'funding-outcome');

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

  constructor(private readonly o: MilestoneAppOptions) {
    this.log = o.log;
    const bounds = { log: o.log, mailboxMax: o.mailboxMax, actorsMax: o.actorsMax, actorIdleMs: o.actorIdleMs };
    this.outcomes = new Outcomes(o.log, (outcome) => this.onHoldOutcome(outcome));
    this.milestones = new Registry({ ...bounds, kind: MILESTONE, resume: (state) => this.resumeFunding(state) });
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
    }
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
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
      for (const id of await read.stalePendingFunding(this.o.pool, SWEEP_AFTER_MS, SWEEP_BATCH_MAX)) {
        this.milestones.peek(id)?.invalidate();
        await this.milestones.read(id).catch(() => {});
      }
    } catch {
      // The database is down: the next sweep tries again.
    } finally {
      this.sweeping = false;
    }
  }

  private command<E extends MilestoneEvent | ProjectEvent>(ctx: CallContext, key: string, content: object, event: E): Command {
    return { key: scopedKey(ctx.caller.id, key), digest: digest(content), event: { ...event }, deadline: ctx.deadline };
  }

  private at(): string {
    return this.o.now().toISOString();
  }

  async create(
    ctx: CallContext,
    input: { projectId: string; freelancerId: string; money: Money; description: string; key: string },
  ): Promise<Persisted<MilestoneContext>> {
    const id = milestoneIdFor(ctx.caller.id, input.key);
    const content = { op: 'create', projectId: input.projectId, freelancerId: input.freelancerId, money: input.money, description: input.description };
    const existing = await this.milestones.read(id);
    // A repeat skips the project step, so reusing a key for other content changes nothing.
    if (!existing.applied[scopedKey(ctx.caller.id, input.key)]) {
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
      }),
    );
    return this.funded(ctx, id, created);
  }

  /** Answers a command that started the funding saga: once the ledger decided, or PENDING_FUNDING at the wait. */
  private async funded(ctx: CallContext, id: string, state: Persisted<MilestoneContext>): Promise<Persisted<MilestoneContext>> {
    const settled = state.state === 'pendingFunding' ? await this.awaitFunding(id, state, Math.min(Date.now() + this.o.fundingWaitMs, ctx.deadline - 50)) : state;
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
    if (!existing.applied[scopedKey(ctx.caller.id, input.key)]) {
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

  /** Waits until the funding saga moved the milestone on, or the wait ends (answering PENDING_FUNDING). */
  private async awaitFunding(id: string, current: Persisted<MilestoneContext>, until: number): Promise<Persisted<MilestoneContext>> {
    const actor = this.milestones.get(id);
    let latest = current;
    let unsubscribe = () => {};
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, until - Date.now()));
      unsubscribe = actor.subscribe((s) => {
        latest = s;
        if (s.state !== 'pendingFunding') {
          clearTimeout(timer);
          resolve();
        }
      });
      if (actor.current && actor.current.state !== 'pendingFunding') {
        latest = actor.current;
        clearTimeout(timer);
        resolve();
      }
    });
    unsubscribe();
    if (latest.state !== 'pendingFunding') return latest;
    // The live outcome may have been missed: one last look at the stream.
    const outcome = await this.outcomes.lookup(creationEventId(latest)).catch(() => null);
    return outcome ? this.milestones.send(id, fundingCommand(outcome, this.at())) : latest;
  }

  private onHoldOutcome(outcome: Outcome): void {
    if (!outcome.milestoneId) return;
    const actor = this.milestones.peek(outcome.milestoneId);
    if (!actor) return; // Whoever loads the milestone later resumes the saga from the stream.
    actor.send(fundingCommand(outcome, this.at())).catch(() => {});
  }

  /** After loading a milestone still pending funding, applies the outcome if the ledger has decided. */
  private async resumeFunding(state: Persisted<MilestoneContext>): Promise<Command | null> {
    if (state.state !== 'pendingFunding') return null;
    const outcome = await this.outcomes.lookup(creationEventId(state));
    return outcome ? fundingCommand(outcome, this.at()) : null;
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

  requestCancellation(ctx: CallContext, milestoneId: string, reason: string, key: string): Promise<Persisted<MilestoneContext>> {
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'request_cancellation', milestoneId, reason }, { type: 'REQUEST_CANCELLATION', by: ctx.caller, at: this.at(), reason }),
    );
  }

  async cancel(ctx: CallContext, milestoneId: string, reason: string, key: string): Promise<Persisted<MilestoneContext>> {
    const milestone = await this.milestones.read(milestoneId);
    // The award may have been accepted through another gateway: read the project from the
    // log, not from a resident actor. Only the employer's right depends on it.
    let awardAccepted = true;
    if (milestone.version > 0 && ctx.caller.id === milestone.context.employerId) {
      const project = await this.o.log.readLast<EntityEventData<ProjectContext>>(this.o.log.names.project(milestone.context.projectId));
      awardAccepted = project ? isAwardAccepted(project.event.data.state.state) : false;
    }
    return this.milestones.send(
      milestoneId,
      this.command(ctx, key, { op: 'cancel', milestoneId, reason }, { type: 'CANCEL', by: ctx.caller, at: this.at(), reason, awardAccepted }),
    );
  }

  isFinal(state: Persisted<MilestoneContext>): boolean {
    return FINAL_STATES.has(state.state);
  }
}

/** The id of the event that asked the ledger to hold the funds (created, or request_accepted): the causation id of the hold. */
export function creationEventId(state: Persisted<MilestoneContext>): string {
  const version = [...state.history].reverse().find((h) => h.type === 'created' || h.type === 'request_accepted')?.version ?? 1;
  const key = Object.entries(state.applied).find(([, v]) => v.version === version)?.[0] ?? '';
  return eventId('milestone', state.id, key);
}

function fundingCommand(outcome: Outcome, at: string): Command {
  const by = { id: SYSTEM_CALLER, roles: [] };
  const event =
    outcome.result === 'ok'
      ? { type: 'FUNDING_SUCCEEDED', by, at }
      : { type: 'FUNDING_FAILED', by, at, reason: outcome.result.toUpperCase() };
  return { key: FUNDING_OUTCOME_KEY, digest: digest({ result: outcome.result }), event };
}
