/**
 * The read side of milestones for the gateway: lists from the read model and watch streams.
 * The gateway calls these (never the ledger's SQL or NATS itself).
 */
import { FINAL_STATES, initialMilestoneContext, type MilestoneContext } from '../../actors/milestone/index.js';
import { Unavailable } from '../errors.js';
import { ignoreFailure } from '../log.js';
import { VERSION_HEADER } from '../events/log.js';
import { SIGNATURE_HEADER } from '../events/signing.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import type { EntityState, Persisted } from '../runtime/entity.js';
import type { MilestoneApp } from './milestones.js';

export type ReadPool = Pool;

// What the gateway reads of states and rows, named here so that it depends on app/ alone.
export { historyOf, type Persisted } from '../runtime/entity.js';
export type { EntryRow } from '../ledger/read.js';
export type { EntityState } from '../runtime/entity.js';

/** Quarantined messages no operator has resolved yet (the ledger is unhealthy while any are). */
export function openQuarantined(pool: ReadPool): Promise<number> {
  return read.openQuarantineCount(pool);
}

/** A listed milestone: its state as the read model has it, and the row's times for the page's keyset. */
export interface ListedMilestone {
  state: EntityState<MilestoneContext>;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A page of the caller's milestones from the read model (a moment behind the log), each with
 * the context the log has. A row last written before the read model kept contexts (migration
 * 009) is read from the log instead, and its context written back (backfillContext), so once.
 */
export async function listMilestones(app: MilestoneApp, pool: ReadPool, q: read.MilestoneFilter): Promise<ListedMilestone[]> {
  return listed(app, pool, await read.listMilestones(pool, q));
}

/** A page of the open disputes (for arbiters), longest unchanged first, as listMilestones' rows. */
export async function listDisputes(app: MilestoneApp, pool: ReadPool, q: read.DisputeFilter): Promise<ListedMilestone[]> {
  return listed(app, pool, await read.listDisputes(pool, q));
}

async function listed(app: MilestoneApp, pool: ReadPool, rows: read.MilestoneRow[]): Promise<ListedMilestone[]> {
  return Promise.all(
    rows.map(async (r) => {
      const times = { createdAt: r.created_at, updatedAt: r.updated_at };
      if (r.state !== null && r.context !== null)
        return {
          state: { id: r.milestone_id, state: r.state, version: r.version, context: { ...initialMilestoneContext, ...r.context } },
          ...times,
        };
      const s = await app.milestones.read(r.milestone_id);
      if (s.version === r.version)
        await read
          .backfillContext(pool, { id: s.id, version: s.version, state: s.state, context: s.context })
          .catch(ignoreFailure(`the read model's context of ${s.id} (read from the log again next time)`));
      return { state: { id: s.id, state: s.state, version: s.version, context: s.context }, ...times };
    }),
  );
}

/**
 * Streams the milestone's state: the current state, then each newer one, until a final status
 * or the client goes away. Every message on the milestone's subject makes the actor read
 * what the log has beyond what it holds (it may be behind another gateway), through its
 * mailbox, so states are written in order and each with its history.
 */
export async function watchMilestone(
  app: MilestoneApp,
  id: string,
  caller: { id: string; roles: readonly string[] },
  write: (s: Persisted<MilestoneContext>) => void,
  /** Registers what to call when the client goes away. */
  onClientGone: (end: () => void) => void,
  maxAgeMs: number,
): Promise<void> {
  const log = app.log;
  const subject = log.names.milestone(id);
  let sent = 0;
  let allowed = false;
  let finish!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));
  const emit = (s: Persisted<MilestoneContext>) => {
    if (s.version <= sent) return;
    sent = s.version;
    write(s);
    if (FINAL_STATES.has(s.state)) finish();
  };
  const follow = () =>
    app.milestones.read(id).then(
      (s) => allowed && emit(s),
      (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
    );
  // Subscribed before the first read, so no change between the two is missed; nothing is
  // written before the caller is known to be a party.
  const sub = log.nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) {
        finish(new Unavailable('EVENT_LOG_UNAVAILABLE', 'the event subscription failed', err));
        return;
      }
      if (!log.verified(msg.subject, msg.data, msg.headers?.get(SIGNATURE_HEADER))) return;
      const version = Number(msg.headers?.get(VERSION_HEADER));
      if (Number.isInteger(version) && version > 0) app.milestones.peek(id)?.observe(version);
      else app.milestones.peek(id)?.invalidate();
      void follow();
    },
  });
  onClientGone(() => finish());
  // A stream ends cleanly (OK) at its maximum age; the client watches again if it still cares.
  const age = setTimeout(() => finish(), maxAgeMs);
  try {
    const first = await app.get({ caller, deadline: Number.POSITIVE_INFINITY }, id);
    allowed = true;
    emit(first);
    void follow();
    await done;
  } finally {
    clearTimeout(age);
    sub.unsubscribe();
  }
}
