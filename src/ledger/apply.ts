import { Decimal } from 'decimal.js';
import { disputeStageWhile, MILESTONE_EVENT_CONTEXT, TIMER_STATES, type MilestoneContext } from '../../actors/milestone/index.js';
import { invariant } from '../errors.js';
import type { CloudEvent } from '../events/cloudevent.js';
import type { EntityState } from '../runtime/entity.js';
import type { PoolClient } from './db.js';
import { classify, milestoneStatus } from './intents.js';
import {
  balanceEffects,
  decidedDebitOf,
  fundedFrom,
  legsOf,
  referenceKey,
  type AccountRef,
  type Intent,
  type PostingResult,
} from './postings.js';
import * as sql from './sql.js';
import { contextJson } from './read.js';
import { ignoreFailure } from '../log.js';

/** What the ledger decided for an event that asked it something (a hold, a deposit, a withdrawal). */
import type { Outcome } from '../events/outcome.js';

export type { Outcome };

export interface StreamEvent {
  seq: number;
  event: CloudEvent;
}

/** Deposits and withdrawals wait for their posting; holds and fees of an earlier version waited for the ledger's decision. */
function asksForOutcome(intent: Intent): boolean {
  if (intent.kind === 'deposit' || intent.kind === 'withdrawal') return true;
  if (intent.kind === 'hold') return intent.reservationId === '';
  return intent.kind === 'fee_hold' && !intent.decided;
}

/** Where a batch sits in the stream, for the cursor's compare-and-set. */
export interface BatchPosition {
  /** The cursor as this worker last read or moved it. */
  from: number;
  /** The last stream sequence of the batch: the cursor after it. */
  to: number;
  /** Outcomes of batches up to this sequence are published and may be forgotten. */
  published: number;
}

/** The cursor was not where this worker left it: another worker applied meanwhile. Nothing was committed. */
export class LedgerFenced extends Error {
  constructor(from: number) {
    super(`the ledger cursor moved away from ${from}: another worker is applying`);
    this.name = 'LedgerFenced';
  }
}

/**
 * Applies one batch of stream events: postings keyed by event id (an event applied before
 * is skipped), balance deltas aggregated per account, and the read model. Two round trips:
 * one read of what the batch needs, then one statement that writes everything. With a
 * position that statement also moves the ledger cursor by compare-and-set and keeps the
 * outcomes in the outbox; if the cursor moved (another worker applied meanwhile, so what was
 * read may be stale) it changes nothing and LedgerFenced is thrown. Without a position (tests
 * applying events again) both run in one transaction. Returns the outcomes to publish once
 * the batch is committed.
 */
export async function applyBatch(
  client: PoolClient,
  events: StreamEvent[],
  position?: BatchPosition,
  quarantine: sql.QuarantineRow[] = [],
): Promise<Outcome[]> {
  const classified = [...events].sort((a, b) => a.seq - b.seq).map((e) => classify(e.seq, e.event));
  const intents = classified.flatMap((c) => (c.intent ? [c.intent] : []));
  const milestones = latestMilestones(classified.flatMap((c) => (c.milestone ? [{ state: c.milestone, carried: c.carried ?? {} }] : [])));
  const reviews = classified.flatMap((c) => (c.review ? [c.review] : []));

  if (!position) await client.query('BEGIN');
  try {
    const refs = new Map<string, AccountRef>();
    for (const intent of intents) for (const leg of legsOf(intent)) refs.set(leg.account.id, leg.account);
    const users = new Map<string, [string, string]>();
    for (const intent of intents)
      for (const fx of balanceEffects(intent)) users.set(`${fx.userId}\u0000${fx.currency}`, [fx.userId, fx.currency]);
    const reads = await sql.readForBatch(client, {
      accountIds: [...refs.keys()],
      eventIds: intents.map((i) => i.eventId),
      references: intents.flatMap((i) => (i.kind === 'deposit' || i.kind === 'withdrawal' ? [referenceKey(i)] : [])),
      users: [...users.values()].map((u) => u[0]),
      currencies: [...users.values()].map((u) => u[1]),
    });
    const { outcomes, writes } = decideBatch(intents, refs, reads);
    const result = await sql.writeBatch(client, {
      ...writes,
      position: position ?? null,
      milestones: milestoneRows(milestones),
      reviews,
      quarantine,
      outbox: position
        ? { causationIds: outcomes.map((o) => o.causationId), payloads: outcomes.map((o) => JSON.stringify(o)) }
        : { causationIds: [], payloads: [] },
    });
    if (!result.fenced) throw new LedgerFenced(position?.from ?? 0);
    // The postings are new to the ledger by the read above; fewer inserted means someone wrote between the two.
    invariant(
      result.postings === writes.postings.eventIds.length,
      `expected to insert ${writes.postings.eventIds.length} postings, inserted ${result.postings}`,
    );
    if (!position) await client.query('COMMIT');
    return outcomes;
  } catch (err) {
    if (!position) await client.query('ROLLBACK').catch(ignoreFailure('a rollback after a failed batch'));
    throw err;
  }
}

/** What a batch of intents does, decided in memory from what was read: the outcomes and every row to write. */
function decideBatch(intents: Intent[], refs: Map<string, AccountRef>, reads: sql.BatchReads) {
  const balances = new Map<string, Decimal>([...refs.keys()].map((id) => [id, new Decimal(reads.balances.get(id) ?? 0)]));
  const done = reads.done;
  const references = reads.references;
  const outcomes: Outcome[] = [];
  const postings: sql.PostingRows = {
    eventIds: [],
    seqs: [],
    kinds: [],
    results: [],
    milestoneIds: [],
    userIds: [],
    currencies: [],
    amounts: [],
    fees: [],
    freelancerAmounts: [],
  };
  const entries = { eventIds: [] as string[], accountIds: [] as string[], amounts: [] as string[] };
  const newRefs = {
    refs: [] as string[],
    kinds: [] as string[],
    users: [] as string[],
    currencies: [] as string[],
    amounts: [] as string[],
    eventIds: [] as string[],
  };
  const deltas = new Map<string, Decimal>();
  // Every decided debit met on the stream counts once per message, posted or skipped (a repeat
  // of an event id, a reused reference): the actors counted each message in their totals.
  const decided = new Map<string, Decimal>();
  const userDeltas = new Map<string, { available: Decimal; held: Decimal; incoming: Decimal; pending: Decimal }>();
  // Payouts that went to pending, and the clears applied (each marks the payout it clears).
  const clearings: sql.ClearingRows = {
    eventIds: [],
    users: [],
    currencies: [],
    milestoneIds: [],
    amounts: [],
    clearsAt: [],
    clearedBy: [],
  };
  const cleared: { causationIds: string[]; eventIds: string[] } = { causationIds: [], eventIds: [] };

  for (const intent of intents) {
    const debitOf = decidedDebitOf(intent);
    if (debitOf) decided.set(debitOf.id, (decided.get(debitOf.id) ?? new Decimal(0)).plus(intent.amount));
    const prior = done.get(intent.eventId);
    // A clear posted marks its payout, now or before (a stream applied again); a refused one marks nothing.
    const markCleared = () => {
      if (intent.kind !== 'clear' || !intent.causationId) return;
      cleared.causationIds.push(intent.causationId);
      cleared.eventIds.push(intent.eventId);
    };
    if (prior === 'ok') markCleared();
    if (prior !== undefined) {
      if (asksForOutcome(intent)) outcomes.push(outcomeOf(intent, prior as PostingResult));
      continue;
    }

    const result = decideResult(intent, balances, references);
    if (intent.kind === 'deposit' || intent.kind === 'withdrawal') {
      if (!references.has(referenceKey(intent))) {
        const row = {
          reference: referenceKey(intent),
          kind: intent.kind,
          user_id: intent.userId,
          currency: intent.currency,
          amount: intent.amount,
          event_id: intent.eventId,
        };
        references.set(row.reference, row);
        newRefs.refs.push(row.reference);
        newRefs.kinds.push(row.kind);
        newRefs.users.push(row.user_id);
        newRefs.currencies.push(row.currency);
        newRefs.amounts.push(row.amount);
        newRefs.eventIds.push(row.event_id);
      }
    }
    // Recorded at once, so the same event twice in one batch is applied once.
    done.set(intent.eventId, result);
    postings.eventIds.push(intent.eventId);
    postings.seqs.push(String(intent.seq));
    postings.kinds.push(intent.kind);
    postings.results.push(result);
    postings.milestoneIds.push('milestoneId' in intent ? (intent.milestoneId ?? null) : null);
    postings.userIds.push('userId' in intent ? intent.userId : null);
    postings.currencies.push(intent.currency);
    postings.amounts.push(intent.amount);
    postings.fees.push(('fee' in intent ? intent.fee : undefined) ?? '0');
    postings.freelancerAmounts.push(freelancerShare(intent));
    if (asksForOutcome(intent)) outcomes.push(outcomeOf(intent, result));
    if (result !== 'ok') continue;
    markCleared();

    for (const leg of legsOf(intent)) {
      const next = balanceAt(balances, leg.account.id).plus(leg.amount);
      invariant(
        leg.account.kind === 'world' || next.gte(0),
        `account ${leg.account.id} would go below zero (${next.toString()}) by event ${intent.eventId}`,
      );
      balances.set(leg.account.id, next);
      deltas.set(leg.account.id, (deltas.get(leg.account.id) ?? new Decimal(0)).plus(leg.amount));
      entries.eventIds.push(intent.eventId);
      entries.accountIds.push(leg.account.id);
      entries.amounts.push(leg.amount);
    }
    for (const fx of balanceEffects(intent)) {
      const key = `${fx.userId}\u0000${fx.currency}`;
      const d = userDeltas.get(key) ?? {
        available: new Decimal(0),
        held: new Decimal(0),
        incoming: new Decimal(0),
        pending: new Decimal(0),
      };
      userDeltas.set(key, {
        available: d.available.plus(fx.available),
        held: d.held.plus(fx.held),
        incoming: d.incoming.plus(fx.incoming),
        pending: d.pending.plus(fx.pending),
      });
    }
    for (const leg of legsOf(intent)) {
      if (leg.account.kind !== 'pending' || !new Decimal(leg.amount).gt(0) || !('clearsAt' in intent)) continue;
      clearings.eventIds.push(intent.eventId);
      clearings.users.push(leg.account.owner);
      clearings.currencies.push(intent.currency);
      clearings.milestoneIds.push(intent.milestoneId);
      clearings.amounts.push(leg.amount);
      clearings.clearsAt.push(intent.clearsAt);
      clearings.clearedBy.push(null);
    }
  }

  // Every account the batch touches is created if new (an account whose postings were all refused starts at zero).
  const accounts = [...refs.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const created = accounts.filter((a) => !reads.balances.has(a.id));
  const moved = accounts.filter((a) => reads.balances.has(a.id) && (!(deltas.get(a.id) ?? new Decimal(0)).isZero() || decided.has(a.id)));
  const decidedOf = (a: AccountRef) => (decided.get(a.id) ?? new Decimal(0)).toString();
  const users = [...userDeltas]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, d]) => ({ key, ids: key.split('\u0000') as [string, string], d }));
  const rows = (list: typeof users): sql.UserBalanceRows => ({
    users: list.map((u) => u.ids[0]),
    currencies: list.map((u) => u.ids[1]),
    available: list.map((u) => u.d.available.toString()),
    held: list.map((u) => u.d.held.toString()),
    incoming: list.map((u) => u.d.incoming.toString()),
    pending: list.map((u) => u.d.pending.toString()),
  });
  return {
    outcomes,
    writes: {
      newAccounts: {
        ids: created.map((a) => a.id),
        kinds: created.map((a) => a.kind),
        owners: created.map((a) => a.owner),
        currencies: created.map((a) => a.currency),
        balances: created.map((a) => (deltas.get(a.id) ?? new Decimal(0)).toString()),
        decided: created.map(decidedOf),
      },
      accountDeltas: {
        ids: moved.map((a) => a.id),
        deltas: moved.map((a) => (deltas.get(a.id) ?? new Decimal(0)).toString()),
        decided: moved.map(decidedOf),
      },
      postings,
      entries,
      references: newRefs,
      newUserBalances: rows(users.filter((u) => !reads.userBalances.has(u.key))),
      userBalanceDeltas: rows(users.filter((u) => reads.userBalances.has(u.key))),
      // A clear in the same batch as its payout (a stream applied from the start) cannot update a row the statement inserts.
      clearings: { ...clearings, clearedBy: clearings.eventIds.map((id) => cleared.eventIds[cleared.causationIds.indexOf(id)] ?? null) },
      cleared,
    },
  };
}

/** The balance of an account the batch read (every account its legs touch is read first). */
function balanceAt(balances: Map<string, Decimal>, accountId: string): Decimal {
  const balance = balances.get(accountId);
  invariant(balance !== undefined, `account ${accountId} was not read for the batch`);
  return balance;
}

function decideResult(intent: Intent, balances: Map<string, Decimal>, references: Map<string, sql.ReferenceRow>): PostingResult {
  if (intent.kind === 'deposit' || intent.kind === 'withdrawal') {
    const first = references.get(referenceKey(intent));
    if (first && first.event_id !== intent.eventId) return 'reference_conflict';
  }
  const source = fundedFrom(intent);
  if (source && balanceAt(balances, source.account.id).lt(source.amount)) {
    // Decided by the account actor on a view that can only undercount, or taken from what the ledger put there
    // (a clear of a payout): short now means a broken rule, never a refusal that leaves money stuck.
    invariant(
      !intent.decided && !intent.covered,
      `the debit ${intent.eventId} (${intent.kind}${intent.decided ? `, decided by the account actor of ${source.account.owner}` : ''}) exceeds ${source.account.id} (${balanceAt(balances, source.account.id).toString()} < ${source.amount})`,
    );
    return 'insufficient_funds';
  }
  return 'ok';
}

/** What of a posting went to the freelancer, gross of fees: the auditor reconciles milestones with it. */
function freelancerShare(intent: Intent): string {
  if (intent.kind === 'release') return intent.amount;
  if (intent.kind === 'settle') return intent.freelancerAmount;
  return '0';
}

function outcomeOf(intent: Intent, result: PostingResult): Outcome {
  return {
    causationId: intent.eventId,
    kind: intent.kind,
    result,
    currency: intent.currency,
    amount: intent.amount,
    ...('milestoneId' in intent ? { milestoneId: intent.milestoneId } : { userId: intent.userId }),
  };
}

/**
 * The newest state of each milestone in the batch, one row per milestone per statement, with
 * the fields its events carry only when they change them taken from the newest event of the
 * batch that carried them. (Fields no event of the batch carried keep their initial value
 * here: they are written only by the first event's insert, never by an update.)
 */
function latestMilestones(
  states: { state: EntityState<MilestoneContext>; carried: Partial<MilestoneContext> }[],
): { state: EntityState<MilestoneContext>; carried: Partial<MilestoneContext> }[] {
  const latest = new Map<string, { state: EntityState<MilestoneContext>; carried: Partial<MilestoneContext> }>();
  for (const { state, carried } of [...states].sort((a, b) => a.state.version - b.state.version)) {
    const seen = latest.get(state.id);
    latest.set(state.id, { state, carried: { ...seen?.carried, ...carried } });
  }
  return [...latest.values()]
    .map(({ state, carried }) => ({ state: { ...state, context: { ...state.context, ...carried } }, carried }))
    .sort((a, b) => (a.state.id < b.state.id ? -1 : 1));
}

const CARRIED_WHEN_CHANGED: ReadonlySet<string> = new Set(MILESTONE_EVENT_CONTEXT.carriedWhenChanged);

/**
 * What of a milestone's context a batch sets in the read model's JSON: every field its events
 * always carry, and the ones they carry only when changed if an event of the batch did. Merged
 * over the row's JSON, it gives the context the event log has (the decision slots left out).
 */
function contextPatch(context: MilestoneContext, carried: Partial<MilestoneContext>): string {
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(context)) if (!CARRIED_WHEN_CHANGED.has(k) || k in carried) patch[k] = v;
  return contextJson(patch);
}

function milestoneRows(latest: { state: EntityState<MilestoneContext>; carried: Partial<MilestoneContext> }[]): sql.MilestoneRows {
  const states = latest.map((l) => l.state);
  const c = states.map((s) => s.context);
  return {
    ids: states.map((s) => s.id),
    projects: c.map((x) => x.projectId),
    employers: c.map((x) => x.employerId),
    freelancers: c.map((x) => x.freelancerId),
    currencies: c.map((x) => x.currency),
    amounts: c.map((x) => x.amount),
    held: c.map((x) => x.held),
    released: c.map((x) => x.released),
    returned: c.map((x) => x.returned),
    statuses: states.map(milestoneStatus),
    versions: states.map((s) => s.version),
    // The gateway refuses control characters; a NUL that got in some other way must not block the ledger.
    descriptions: c.map((x) => x.description.replaceAll('\u0000', '')),
    employerFees: c.map((x) => x.employerFee),
    freelancerFees: c.map((x) => x.freelancerFee),
    // A timer is due only where DEADLINE is handled: an escalation in flight keeps its deadline
    // in the state (it applies again if the escalation fails) but is not offered to the timers.
    dueAt: states.map((s) => (TIMER_STATES.has(s.state) && s.context.dueAt ? s.context.dueAt : null)),
    disputeStages: states.map((s) => disputeStageWhile(s.state, s.context.frozen?.from) ?? ''),
    // Without its first event in the batch the row exists, and an update keeps what was set at creation.
    createdAt: c.map((x) => x.createdAt || x.updatedAt),
    first: c.map((x) => x.createdAt !== ''),
    updatedAt: c.map((x) => x.updatedAt),
    descriptionSet: latest.map((l) => 'description' in l.carried),
    states: states.map((s) => s.state),
    contexts: latest.map((l) => contextPatch(l.state.context, l.carried)),
  };
}
