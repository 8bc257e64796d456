import { SAGA_DISPUTE_STAGES, SAGA_STATUSES, type MilestoneContext } from '../../actors/milestone/index.js';
import { Unavailable } from '../errors.js';
import type { Pool } from './db.js';

/**
 * Queries of the read model and the ledger, for the gateway. Read-only; a failing database
 * is reported as UNAVAILABLE, never as zero.
 */

async function query<R extends object>(pool: Pool, name: string, text: string, values: unknown[]): Promise<R[]> {
  try {
    return (await pool.query<R>({ name, text, values })).rows;
  } catch (err) {
    // The database's own text stays in the log (the gateway logs the cause), never in the answer.
    throw Object.assign(new Unavailable('DATABASE_UNAVAILABLE', 'the ledger database is unavailable; retry later'), { cause: err });
  }
}

export interface BalanceRow {
  available: string;
  held: string;
  incoming: string;
  pending: string;
}

export async function balanceOf(pool: Pool, userId: string, currency: string): Promise<BalanceRow | null> {
  const rows = await query<BalanceRow>(
    pool,
    'read-balance',
    'SELECT available::text, held::text, incoming::text, pending::text FROM user_balances WHERE user_id = $1 AND currency = $2',
    [userId, currency],
  );
  return rows[0] ?? null;
}

/** What the ledger has posted for a user's available account in one currency (actors/account.rules.ts spendable). */
export async function ledgerView(
  pool: Pool,
  userId: string,
  currency: string,
): Promise<{ available: string; decidedPosted: string; cursor: number }> {
  const rows = await query<{ available: string | null; decided: string | null; cursor: string }>(
    pool,
    'read-ledger-view',
    `SELECT a.balance::text AS available, a.decided_debits::text AS decided, c.stream_seq::text AS cursor
     FROM ledger_cursor c LEFT JOIN accounts a ON a.account_id = $1`,
    [`available:${currency}:${userId}`],
  );
  return { available: rows[0]?.available ?? '0', decidedPosted: rows[0]?.decided ?? '0', cursor: Number(rows[0]?.cursor ?? 0) };
}

/**
 * The balance projection and the available account's decided debits, from one statement (one
 * snapshot: a posting committed between two reads would be counted twice).
 */
export async function balanceAndView(
  pool: Pool,
  userId: string,
  currency: string,
): Promise<{ balance: BalanceRow | null; decidedPosted: string }> {
  const rows = await query<{
    available: string | null;
    held: string | null;
    incoming: string | null;
    pending: string | null;
    decided: string | null;
  }>(
    pool,
    'read-balance-and-view',
    `SELECT b.available::text, b.held::text, b.incoming::text, b.pending::text, (SELECT decided_debits::text FROM accounts WHERE account_id = $3) AS decided
     FROM (SELECT 1) one LEFT JOIN user_balances b ON b.user_id = $1 AND b.currency = $2`,
    [userId, currency, `available:${currency}:${userId}`],
  );
  const r = rows[0];
  return {
    balance:
      r?.available != null ? { available: r.available, held: r.held ?? '0', incoming: r.incoming ?? '0', pending: r.pending ?? '0' } : null,
    decidedPosted: r?.decided ?? '0',
  };
}

/** A reservation the ledger holds that nothing has consumed or released for longer than `olderThanMs`. */
export interface OpenReservation {
  reservationId: string;
  milestoneId: string;
  userId: string;
  currency: string;
  amount: string;
  seq: number;
}

export async function staleReservations(pool: Pool, olderThanMs: number, limit: number): Promise<OpenReservation[]> {
  const rows = await query<{
    reservation_id: string;
    milestone_id: string;
    user_id: string;
    currency: string;
    amount: string;
    seq: string;
  }>(
    pool,
    'read-stale-reservations',
    `SELECT p.event_id::text AS reservation_id, p.milestone_id::text AS milestone_id, a.owner_id AS user_id, a.currency, a.balance::text AS amount,
            p.stream_seq::text AS seq
     FROM accounts a JOIN postings p ON p.event_id = substr(a.account_id, 13)::uuid
     WHERE a.kind = 'reservation' AND a.balance > 0 AND p.created_at < now() - $1 * interval '1 millisecond'
     ORDER BY p.created_at LIMIT $2`,
    [olderThanMs, limit],
  );
  return rows.map((r) => ({
    reservationId: r.reservation_id,
    milestoneId: r.milestone_id,
    userId: r.user_id,
    currency: r.currency,
    amount: r.amount,
    seq: Number(r.seq),
  }));
}

export interface EntryRow {
  event_id: string;
  kind: string;
  currency: string;
  amount: string;
  milestone_id: string | null;
  created_at: Date;
  stream_seq: string;
  fee: string;
  /** available, or pending (a payout not cleared yet, or cleared: see clears_at). */
  account_kind: string;
  clears_at: Date | null;
}

/**
 * Entries on the user's available and pending accounts (a clear shows on both), newest first,
 * in the order (stream sequence desc, account kind), after the cursor of the previous page if
 * given (a cursor of an earlier version names the sequence alone).
 */
export async function entriesOf(
  pool: Pool,
  userId: string,
  before: { seq: string; kind: string | null } | null,
  limit: number,
): Promise<EntryRow[]> {
  return query<EntryRow>(
    pool,
    'read-entries',
    `SELECT p.event_id::text, p.kind, a.currency, e.amount::text, p.milestone_id::text, p.created_at, p.stream_seq::text,
            -- The fee a payout charged shows on the payout's own entry (pending, under a clearing period), not on a refund beside it.
            (CASE WHEN p.kind = 'reserve' OR (p.kind = 'hold' AND m.employer_id = $1)
                       OR (p.kind IN ('release', 'settle') AND m.freelancer_id = $1 AND e.amount > 0
                           AND (a.kind = 'pending' OR NOT EXISTS (SELECT 1 FROM clearings x WHERE x.event_id = p.event_id)))
                  THEN p.fee ELSE 0 END)::text AS fee,
            a.kind AS account_kind, c.clears_at
     FROM accounts a
     JOIN entries e ON e.account_id = a.account_id
     JOIN postings p ON p.event_id = e.event_id
     LEFT JOIN milestones m ON m.milestone_id = p.milestone_id
     LEFT JOIN clearings c ON c.event_id = p.event_id AND a.kind = 'pending'
     WHERE a.kind IN ('available', 'pending') AND a.owner_id = $1
       AND ($2::bigint IS NULL OR p.stream_seq < $2::bigint OR ($4::text IS NOT NULL AND p.stream_seq = $2::bigint AND a.kind > $4::text))
     ORDER BY p.stream_seq DESC, a.kind
     LIMIT $3`,
    [userId, before?.seq ?? null, limit, before?.kind ?? null],
  );
}

export interface MilestoneRow {
  milestone_id: string;
  version: number;
  created_at: Date;
  updated_at: Date;
  /** The state name and the context (migration 009); null in rows last written before it. */
  state: string | null;
  context: Partial<MilestoneContext> | null;
}

export interface MilestoneFilter {
  /** 'employer_id' for outgoing, 'freelancer_id' for incoming. */
  partyColumn: 'employer_id' | 'freelancer_id';
  userId: string;
  statuses: string[];
  projectId: string | null;
  /** The order, by one of the two times and the id. */
  sort: { column: 'created_at' | 'updated_at'; descending: boolean };
  /** Half-open ranges, from <= t < before; null = unbounded. */
  created: { from: string | null; before: string | null };
  updated: { from: string | null; before: string | null };
  /** The keyset of the last row of the previous page: its sort time and id. */
  after: { at: string; id: string } | null;
  limit: number;
}

export async function listMilestones(pool: Pool, f: MilestoneFilter): Promise<MilestoneRow[]> {
  const { column, descending } = f.sort;
  const [beyond, order] = descending ? ['<', 'DESC'] : ['>', 'ASC'];
  return query<MilestoneRow>(
    pool,
    `read-milestones-${f.partyColumn}-${column}-${order}`,
    `SELECT milestone_id::text, version, created_at, updated_at, state, context
     FROM milestones
     WHERE ${f.partyColumn} = $1
       AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[]))
       AND ($3::text IS NULL OR project_id = $3)
       AND ($4::timestamptz IS NULL OR (${column}, milestone_id) ${beyond} ($4::timestamptz, $5::uuid))
       AND ($7::timestamptz IS NULL OR created_at >= $7) AND ($8::timestamptz IS NULL OR created_at < $8)
       AND ($9::timestamptz IS NULL OR updated_at >= $9) AND ($10::timestamptz IS NULL OR updated_at < $10)
     ORDER BY ${column} ${order}, milestone_id ${order}
     LIMIT $6`,
    [
      f.userId,
      f.statuses,
      f.projectId,
      f.after?.at ?? null,
      f.after?.id ?? null,
      f.limit,
      f.created.from,
      f.created.before,
      f.updated.from,
      f.updated.before,
    ],
  );
}

/**
 * A milestone context as the read model's JSON holds it: without the decision slots, and
 * without NUL characters (jsonb cannot hold one; the gateway refuses them, but one that got in
 * some other way must not block the ledger).
 */
export function contextJson(context: Record<string, unknown>): string {
  const kept = { ...context };
  delete kept.rejection;
  delete kept.emitted;
  return JSON.stringify(kept, (_k, v: unknown) => (typeof v === 'string' ? v.replaceAll('\u0000', '') : v));
}

/**
 * Gives a row last written before the read model kept contexts (migration 009) the state and
 * context the log has at the row's own version, so the lists read it from the log only once.
 * The worker writes every later version; a row it moved on meanwhile is left to it.
 */
export async function backfillContext(pool: Pool, s: { id: string; version: number; state: string; context: object }): Promise<void> {
  await query(
    pool,
    'backfill-milestone-context',
    `UPDATE milestones SET state = $3, context = $4::jsonb WHERE milestone_id = $1 AND version = $2 AND context IS NULL`,
    [s.id, s.version, s.state, contextJson(s.context as Record<string, unknown>)],
  );
}

/** Payouts whose clearing time has come and that no clear has cleared yet, oldest first. */
export async function dueClearings(
  pool: Pool,
  now: Date,
  limit: number,
): Promise<{ eventId: string; userId: string; currency: string; milestoneId: string; amount: string }[]> {
  const rows = await query<{ event_id: string; user_id: string; currency: string; milestone_id: string; amount: string }>(
    pool,
    'read-due-clearings',
    `SELECT event_id::text, user_id, currency, milestone_id::text, amount::text FROM clearings
     WHERE cleared_by IS NULL AND clears_at <= $1 ORDER BY clears_at LIMIT $2`,
    [now, limit],
  );
  return rows.map((r) => ({ eventId: r.event_id, userId: r.user_id, currency: r.currency, milestoneId: r.milestone_id, amount: r.amount }));
}

/** Whether the ledger posted the event `eventId` (any result). */
export async function isPosted(pool: Pool, eventId: string): Promise<boolean> {
  const rows = await query<{ one: number }>(pool, 'read-is-posted', 'SELECT 1 AS one FROM postings WHERE event_id = $1::uuid', [eventId]);
  return rows.length > 0;
}

/** The last stream sequence the ledger applied. */
export async function ledgerCursor(pool: Pool): Promise<number> {
  const rows = await query<{ seq: string }>(pool, 'read-ledger-cursor', 'SELECT stream_seq::text AS seq FROM ledger_cursor', []);
  return Number(rows[0]?.seq ?? 0);
}

/** When the user's next pending payout in `currency` clears; null when none is pending. */
export async function nextClearing(pool: Pool, userId: string, currency: string): Promise<Date | null> {
  const rows = await query<{ at: Date | null }>(
    pool,
    'read-next-clearing',
    `SELECT min(clears_at) AS at FROM clearings WHERE user_id = $1 AND currency = $2 AND cleared_by IS NULL`,
    [userId, currency],
  );
  return rows[0]?.at ?? null;
}

export interface DisputeFilter {
  stages: string[];
  /** The keyset of the last row of the previous page: its updated_at and id. */
  after: { at: string; id: string } | null;
  limit: number;
}

/** Open disputes in the given stages, longest unchanged first (an arbiter's queue; migration 010's index). */
export async function listDisputes(pool: Pool, f: DisputeFilter): Promise<MilestoneRow[]> {
  return query<MilestoneRow>(
    pool,
    'read-disputes',
    `SELECT milestone_id::text, version, created_at, updated_at, state, context
     FROM milestones
     WHERE dispute_stage = ANY($1::text[]) AND status = 'DISPUTED'
       AND ($2::timestamptz IS NULL OR (updated_at, milestone_id) > ($2::timestamptz, $3::uuid))
     ORDER BY updated_at, milestone_id
     LIMIT $4`,
    [f.stages, f.after?.at ?? null, f.after?.id ?? null, f.limit],
  );
}

/** Milestones still waiting for the ledger in the read model after `olderThanMs` (funding, an arbitration fee): sagas to finish, oldest first. */
export async function staleSagas(pool: Pool, olderThanMs: number, limit: number): Promise<{ id: string; updatedAt: Date }[]> {
  const rows = await query<{ milestone_id: string; updated_at: Date }>(
    pool,
    'read-stale-sagas',
    `SELECT milestone_id::text, updated_at FROM milestones
     WHERE (status = ANY($3::text[]) OR dispute_stage = ANY($4::text[])) AND updated_at < now() - $1 * interval '1 millisecond'
     ORDER BY updated_at LIMIT $2`,
    [olderThanMs, limit, SAGA_STATUSES, SAGA_DISPUTE_STAGES],
  );
  return rows.map((r) => ({ id: r.milestone_id, updatedAt: r.updated_at }));
}

/** Milestones with a timer due at `now` (by the injected clock), oldest first. */
export async function dueTimers(pool: Pool, now: Date, limit: number): Promise<{ id: string; dueAt: Date }[]> {
  const rows = await query<{ milestone_id: string; due_at: Date }>(
    pool,
    'read-due-timers',
    `SELECT milestone_id::text, due_at FROM milestones WHERE due_at <= $1 ORDER BY due_at LIMIT $2`,
    [now, limit],
  );
  return rows.map((r) => ({ id: r.milestone_id, dueAt: r.due_at }));
}

/** Whether any milestone of the project has paid its freelancer (a release or a dispute share). */
export async function projectHasPaid(pool: Pool, projectId: string): Promise<boolean> {
  const rows = await query<{ one: number }>(
    pool,
    'read-project-paid',
    'SELECT 1 AS one FROM milestones WHERE project_id = $1 AND released > 0 LIMIT 1',
    [projectId],
  );
  return rows.length > 0;
}

export interface ReviewRow {
  project_id: string;
  reviewer_id: string;
  reviewee_id: string;
  rating: number;
  comment: string;
  created_at: Date;
}

/** A page of the reviews about the user, newest first, after `after` (the last row of the previous page) if given. */
export async function reviewsOf(
  pool: Pool,
  userId: string,
  limit: number,
  after: { createdAt: string; projectId: string; reviewerId: string } | null = null,
): Promise<ReviewRow[]> {
  return query<ReviewRow>(
    pool,
    'read-reviews-page',
    `SELECT project_id, reviewer_id, reviewee_id, rating, comment, created_at FROM reviews
     WHERE reviewee_id = $1
       AND ($3::timestamptz IS NULL OR (created_at, project_id, reviewer_id) < ($3::timestamptz, $4::text, $5::text))
     ORDER BY created_at DESC, project_id DESC, reviewer_id DESC LIMIT $2`,
    [userId, limit, after?.createdAt ?? null, after?.projectId ?? null, after?.reviewerId ?? null],
  );
}

/** A freelancer's paid milestones and earnings (net of fees) per currency, and the reviews about the user. */
/**
 * What a user's reputation is made of. Only projects that paid at least `minPaid` (major
 * units, in the project's currency) count, and only one review per reviewer (the newest), so
 * sock-puppet counterparts with tiny milestones cannot farm it: a released milestone counts
 * toward `releasedMilestones` when it paid at least `minPaid`, a review toward the score when
 * its project did. `earned` is everything earned, net of fees.
 */
export async function reputationOf(
  pool: Pool,
  userId: string,
  minPaid: string,
): Promise<{ releasedMilestones: number; earned: { currency: string; amount: string }[]; reviewCount: number; ratingSum: number }> {
  const earned = await query<{ currency: string; milestones: string; amount: string }>(
    pool,
    'read-reputation-earned',
    `SELECT currency, count(*) FILTER (WHERE released >= $2::numeric)::text AS milestones, sum(released - freelancer_fee)::text AS amount FROM milestones
     WHERE freelancer_id = $1 AND released > 0 GROUP BY currency ORDER BY currency`,
    [userId, minPaid],
  );
  const reviews = await query<{ n: string; total: string }>(
    pool,
    'read-reputation-reviews',
    `WITH paid AS (
       SELECT project_id, employer_id, freelancer_id, sum(released) AS released FROM milestones
       WHERE released > 0 AND (freelancer_id = $1 OR employer_id = $1) GROUP BY project_id, employer_id, freelancer_id
     ), counted AS (
       SELECT DISTINCT ON (r.reviewer_id) r.rating FROM reviews r
       JOIN paid p ON p.project_id = r.project_id AND r.reviewee_id IN (p.freelancer_id, p.employer_id) AND r.reviewer_id IN (p.freelancer_id, p.employer_id)
       WHERE r.reviewee_id = $1 AND p.released >= $2::numeric
       ORDER BY r.reviewer_id, r.created_at DESC
     )
     SELECT count(*)::text AS n, coalesce(sum(rating), 0)::text AS total FROM counted`,
    [userId, minPaid],
  );
  return {
    releasedMilestones: earned.reduce((s, r) => s + Number(r.milestones), 0),
    earned: earned.map((r) => ({ currency: r.currency, amount: r.amount })),
    reviewCount: Number(reviews[0]?.n ?? 0),
    ratingSum: Number(reviews[0]?.total ?? 0),
  };
}

/** How many quarantined messages wait for an operator (none resolved): the ledger's health. */
export async function openQuarantineCount(pool: Pool): Promise<number> {
  const rows = await query<{ n: string }>(
    pool,
    'open-quarantine-count',
    'SELECT count(*)::text AS n FROM ledger_quarantine WHERE resolution IS NULL',
    [],
  );
  return Number(rows[0]?.n ?? '0');
}
