import type { PoolClient } from './db.js';
import type { ReviewRow } from './intents.js';
import { invariant } from '../errors.js';

/** The one row a statement that always returns one row returned. */
function onlyRow<T>(rows: T[], statement: string): T {
  const row = rows[0];
  invariant(row !== undefined, `${statement} returned no row`);
  return row;
}

/**
 * Every statement the ledger worker runs, one function each, as named prepared statements.
 * Arrays go in through unnest. A batch is two round trips: `readForBatch` (what the batch
 * needs to decide), then `writeBatch` (everything it changes, in one statement).
 */

export interface ReferenceRow {
  reference: string;
  kind: string;
  user_id: string;
  currency: string;
  amount: string;
  event_id: string;
}

export interface BatchReads {
  /** Balances of the accounts that exist; an account not listed has none yet (0). */
  balances: Map<string, string>;
  /** Postings already written for the batch's events: event id -> result. */
  done: Map<string, string>;
  references: Map<string, ReferenceRow>;
  /** The `user\u0000currency` keys of the user_balances rows that exist. */
  userBalances: Set<string>;
}

/** One round trip: the balances, the postings already made, the external references and the projection rows a batch needs. */
export async function readForBatch(
  c: PoolClient,
  q: { accountIds: string[]; eventIds: string[]; references: string[]; users: string[]; currencies: string[] },
): Promise<BatchReads> {
  const r = await c.query<{ accounts: [string, string][]; done: [string, string][]; refs: ReferenceRow[]; users: [string, string][] }>({
    name: 'ledger-read-for-batch',
    text: `SELECT
             (SELECT coalesce(json_agg(json_build_array(account_id, balance::text)), '[]') FROM accounts WHERE account_id = ANY($1::text[])) AS accounts,
             (SELECT coalesce(json_agg(json_build_array(event_id::text, result)), '[]') FROM postings WHERE event_id = ANY($2::uuid[])) AS done,
             (SELECT coalesce(json_agg(x), '[]') FROM (SELECT reference, kind, user_id, currency, amount::text AS amount, event_id::text AS event_id
                                                        FROM external_references WHERE reference = ANY($3::text[])) x) AS refs,
             (SELECT coalesce(json_agg(json_build_array(b.user_id, b.currency)), '[]') FROM user_balances b
                JOIN unnest($4::text[], $5::text[]) AS u(user_id, currency) ON b.user_id = u.user_id AND b.currency = u.currency) AS users`,
    values: [q.accountIds, q.eventIds, q.references, q.users, q.currencies],
  });
  const row = onlyRow(r.rows, 'ledger-read-for-batch');
  return {
    balances: new Map(row.accounts),
    done: new Map(row.done),
    references: new Map(row.refs.map((x) => [x.reference, x])),
    userBalances: new Set(row.users.map(([u, cur]) => `${u}\u0000${cur}`)),
  };
}

export interface PostingRows {
  eventIds: string[];
  seqs: string[];
  kinds: string[];
  results: string[];
  milestoneIds: (string | null)[];
  userIds: (string | null)[];
  currencies: string[];
  amounts: string[];
  fees: string[];
  freelancerAmounts: string[];
}

export interface UserBalanceRows {
  users: string[];
  currencies: string[];
  available: string[];
  held: string[];
  incoming: string[];
  pending: string[];
}

/** Payouts that went to a pending account (migration 011), by their event. */
export interface ClearingRows {
  eventIds: string[];
  users: string[];
  currencies: string[];
  milestoneIds: string[];
  amounts: string[];
  clearsAt: string[];
  clearedBy: (string | null)[];
}

export interface BatchWrites {
  /** With a position the statement moves the cursor from `from` to `to` (compare-and-set) and changes nothing if it moved. */
  position: { from: number; to: number; published: number } | null;
  /**
   * Accounts touched: new ones inserted with their delta as balance, existing ones updated by
   * it. Two parts because a CHECK is tested on the row an INSERT proposes even when it
   * conflicts, so a negative delta cannot go through INSERT ... ON CONFLICT.
   */
  newAccounts: { ids: string[]; kinds: string[]; owners: string[]; currencies: string[]; balances: string[]; decided: string[] };
  /** `decided`: what adds to decided_debits (see migration 007). */
  accountDeltas: { ids: string[]; deltas: string[]; decided: string[] };
  postings: PostingRows;
  entries: { eventIds: string[]; accountIds: string[]; amounts: string[] };
  references: { refs: string[]; kinds: string[]; users: string[]; currencies: string[]; amounts: string[]; eventIds: string[] };
  /** The same split for the balance projection: new rows, and deltas of existing ones. */
  newUserBalances: UserBalanceRows;
  userBalanceDeltas: UserBalanceRows;
  milestones: MilestoneRows;
  clearings: ClearingRows;
  /** Clears applied: the payout each clears, and the clear's event. */
  cleared: { causationIds: string[]; eventIds: string[] };
  reviews: ReviewRow[];
  outbox: { causationIds: string[]; payloads: string[] };
  quarantine: QuarantineRow[];
}

/** A message of the stream the ledger moved aside instead of applying (migration 005). */
export interface QuarantineRow {
  seq: number;
  subject: string;
  eventId: string | null;
  eventType: string | null;
  reason: 'UNSIGNED' | 'NOT_A_CLOUDEVENT' | 'FOREIGN_SOURCE' | 'CANNOT_APPLY';
  detail: string;
  signed: boolean;
  payload: string;
}

/**
 * One statement, so one round trip and atomic by itself: every data-modifying part runs only
 * if the fence holds (the cursor was still at `position.from`, or there is no position), and
 * then all of them commit together. Returns whether the fence held and how many postings were
 * inserted.
 */
export async function writeBatch(c: PoolClient, w: BatchWrites): Promise<{ fenced: boolean; postings: number }> {
  const m = w.milestones;
  const p = w.postings;
  const r = await c.query<{ fenced: string; postings: string }>({
    name: 'ledger-write-batch',
    text: `WITH moved AS (
             UPDATE ledger_cursor SET stream_seq = $2, updated_at = now() WHERE $1::bigint IS NOT NULL AND stream_seq = $1 RETURNING 1
           ),
           fence AS (SELECT 1 AS ok WHERE $1::bigint IS NULL UNION ALL SELECT 1 FROM moved),
           forgotten AS (DELETE FROM ledger_outbox WHERE stream_seq <= $3 AND EXISTS (SELECT 1 FROM fence)),
           accounts_new AS (
             INSERT INTO accounts (account_id, kind, owner_id, currency, balance, decided_debits)
             SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[], $75::numeric[]) WHERE EXISTS (SELECT 1 FROM fence)
           ),
           accounts_moved AS (
             UPDATE accounts a SET balance = a.balance + d.delta, decided_debits = a.decided_debits + d.decided
             FROM unnest($60::text[], $61::numeric[], $76::numeric[]) AS d(account_id, delta, decided)
             WHERE a.account_id = d.account_id AND EXISTS (SELECT 1 FROM fence)
           ),
           posted AS (
             -- created_at is the wall clock at insert: the ledger lag (answer -> posting) is measured from it.
             INSERT INTO postings (event_id, stream_seq, kind, result, milestone_id, user_id, currency, amount, fee, freelancer_amount, created_at)
             SELECT u.*, clock_timestamp()
             FROM unnest($9::uuid[], $10::bigint[], $11::text[], $12::text[], $13::uuid[], $14::text[], $15::text[], $16::numeric[], $17::numeric[], $18::numeric[]) AS u
             WHERE EXISTS (SELECT 1 FROM fence)
             ON CONFLICT (event_id) DO NOTHING
             RETURNING 1
           ),
           entered AS (
             INSERT INTO entries (event_id, account_id, amount)
             SELECT * FROM unnest($19::uuid[], $20::text[], $21::numeric[]) WHERE EXISTS (SELECT 1 FROM fence)
           ),
           referenced AS (
             INSERT INTO external_references (reference, kind, user_id, currency, amount, event_id)
             SELECT * FROM unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::numeric[], $27::uuid[]) WHERE EXISTS (SELECT 1 FROM fence)
           ),
           projected_new AS (
             INSERT INTO user_balances (user_id, currency, available, held, incoming, pending)
             SELECT * FROM unnest($28::text[], $29::text[], $30::numeric[], $31::numeric[], $32::numeric[], $81::numeric[]) WHERE EXISTS (SELECT 1 FROM fence)
           ),
           projected_moved AS (
             UPDATE user_balances b
             SET available = b.available + d.available, held = b.held + d.held, incoming = b.incoming + d.incoming, pending = b.pending + d.pending
             FROM unnest($62::text[], $63::text[], $64::numeric[], $65::numeric[], $66::numeric[], $82::numeric[]) AS d(user_id, currency, available, held, incoming, pending)
             WHERE b.user_id = d.user_id AND b.currency = d.currency AND EXISTS (SELECT 1 FROM fence)
           ),
           -- A payout to pending is listed with its clearing time once; a clear marks the payout it cleared.
           to_clear AS (
             INSERT INTO clearings (event_id, user_id, currency, milestone_id, amount, clears_at, cleared_by)
             SELECT * FROM unnest($83::uuid[], $84::text[], $85::text[], $86::uuid[], $87::numeric[], $88::timestamptz[], $91::uuid[])
             WHERE EXISTS (SELECT 1 FROM fence)
             ON CONFLICT (event_id) DO NOTHING
           ),
           clears AS (
             UPDATE clearings c SET cleared_by = u.event_id
             FROM unnest($89::uuid[], $90::uuid[]) AS u(causation_id, event_id)
             WHERE c.event_id = u.causation_id AND c.cleared_by IS NULL AND EXISTS (SELECT 1 FROM fence)
           ),
           -- The read model: a milestone whose first event is in the batch is inserted (or, applied
           -- again, updated); the others are updated, never with what is set at creation (the
           -- parties, amount, texts, employer fee: their later events leave those out). An older
           -- version never overwrites a newer one.
           milestone_rows AS (
             SELECT * FROM unnest($33::uuid[], $34::text[], $35::text[], $36::text[], $37::text[], $38::numeric[], $39::numeric[], $40::numeric[],
                                  $41::numeric[], $42::text[], $43::int[], $44::text[], $45::timestamptz[], $46::timestamptz[],
                                  $47::numeric[], $48::numeric[], $49::timestamptz[], $50::text[], $77::boolean[], $78::boolean[],
                                  $79::text[], $80::jsonb[])
               AS u(milestone_id, project_id, employer_id, freelancer_id, currency, amount, held, released, returned,
                    status, version, description, created_at, updated_at, employer_fee, freelancer_fee, due_at, dispute_stage, first,
                    description_set, state, context)
             WHERE EXISTS (SELECT 1 FROM fence)
           ),
           milestones_projected AS (
             INSERT INTO milestones (milestone_id, project_id, employer_id, freelancer_id, currency, amount, held, released, returned,
                                     status, version, description, created_at, updated_at, employer_fee, freelancer_fee, due_at, dispute_stage,
                                     state, context)
             SELECT milestone_id, project_id, employer_id, freelancer_id, currency, amount, held, released, returned,
                    status, version, description, created_at, updated_at, employer_fee, freelancer_fee, due_at, dispute_stage,
                    state, context
             FROM milestone_rows WHERE first
             ON CONFLICT (milestone_id) DO UPDATE SET
               held = EXCLUDED.held, released = EXCLUDED.released, returned = EXCLUDED.returned, status = EXCLUDED.status,
               version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, description = EXCLUDED.description,
               freelancer_fee = EXCLUDED.freelancer_fee, due_at = EXCLUDED.due_at, dispute_stage = EXCLUDED.dispute_stage,
               state = EXCLUDED.state, context = COALESCE(milestones.context, '{}'::jsonb) || EXCLUDED.context
             WHERE milestones.version < EXCLUDED.version
           ),
           -- A row from before migration 009 has no context to merge into: it keeps none (the list reads it from the log).
           milestones_moved AS (
             UPDATE milestones m SET
               held = u.held, released = u.released, returned = u.returned, status = u.status, version = u.version, updated_at = u.updated_at,
               freelancer_fee = u.freelancer_fee, due_at = u.due_at, dispute_stage = u.dispute_stage,
               description = CASE WHEN u.description_set THEN u.description ELSE m.description END,
               state = u.state, context = m.context || u.context
             FROM milestone_rows u
             WHERE NOT u.first AND m.milestone_id = u.milestone_id AND m.version < u.version
           ),
           reviewed AS (
             -- One review per reviewer per project, so a review applied again inserts nothing.
             INSERT INTO reviews (project_id, reviewer_id, reviewee_id, rating, comment, event_id, created_at)
             SELECT * FROM unnest($51::text[], $52::text[], $53::text[], $54::smallint[], $55::text[], $56::uuid[], $57::timestamptz[]) WHERE EXISTS (SELECT 1 FROM fence)
             ON CONFLICT DO NOTHING
           ),
           set_aside AS (
             INSERT INTO ledger_quarantine (stream_seq, subject, event_id, event_type, reason, detail, signed, payload)
             SELECT * FROM unnest($67::bigint[], $68::text[], $69::text[], $70::text[], $71::text[], $72::text[], $73::boolean[], $74::text[])
             WHERE EXISTS (SELECT 1 FROM fence)
             ON CONFLICT (stream_seq) DO NOTHING
           ),
           kept AS (
             INSERT INTO ledger_outbox (causation_id, stream_seq, payload)
             SELECT u.causation_id, $2, u.payload FROM unnest($58::text[], $59::jsonb[]) AS u(causation_id, payload) WHERE EXISTS (SELECT 1 FROM fence)
             ON CONFLICT (causation_id) DO UPDATE SET stream_seq = EXCLUDED.stream_seq, payload = EXCLUDED.payload
           )
           SELECT (SELECT count(*) FROM fence)::text AS fenced, (SELECT count(*) FROM posted)::text AS postings`,
    values: [
      w.position?.from ?? null,
      w.position?.to ?? 0,
      w.position?.published ?? 0,
      w.newAccounts.ids,
      w.newAccounts.kinds,
      w.newAccounts.owners,
      w.newAccounts.currencies,
      w.newAccounts.balances,
      p.eventIds,
      p.seqs,
      p.kinds,
      p.results,
      p.milestoneIds,
      p.userIds,
      p.currencies,
      p.amounts,
      p.fees,
      p.freelancerAmounts,
      w.entries.eventIds,
      w.entries.accountIds,
      w.entries.amounts,
      w.references.refs,
      w.references.kinds,
      w.references.users,
      w.references.currencies,
      w.references.amounts,
      w.references.eventIds,
      w.newUserBalances.users,
      w.newUserBalances.currencies,
      w.newUserBalances.available,
      w.newUserBalances.held,
      w.newUserBalances.incoming,
      m.ids,
      m.projects,
      m.employers,
      m.freelancers,
      m.currencies,
      m.amounts,
      m.held,
      m.released,
      m.returned,
      m.statuses,
      m.versions,
      m.descriptions,
      m.createdAt,
      m.updatedAt,
      m.employerFees,
      m.freelancerFees,
      m.dueAt,
      m.disputeStages,
      w.reviews.map((x) => x.projectId),
      w.reviews.map((x) => x.reviewerId),
      w.reviews.map((x) => x.revieweeId),
      w.reviews.map((x) => x.rating),
      w.reviews.map((x) => x.comment),
      w.reviews.map((x) => x.eventId),
      w.reviews.map((x) => x.at),
      w.outbox.causationIds,
      w.outbox.payloads,
      w.accountDeltas.ids,
      w.accountDeltas.deltas,
      w.userBalanceDeltas.users,
      w.userBalanceDeltas.currencies,
      w.userBalanceDeltas.available,
      w.userBalanceDeltas.held,
      w.userBalanceDeltas.incoming,
      w.quarantine.map((q) => q.seq),
      w.quarantine.map((q) => q.subject),
      w.quarantine.map((q) => q.eventId),
      w.quarantine.map((q) => q.eventType),
      w.quarantine.map((q) => q.reason),
      w.quarantine.map((q) => q.detail),
      w.quarantine.map((q) => q.signed),
      w.quarantine.map((q) => q.payload),
      w.newAccounts.decided,
      w.accountDeltas.decided,
      m.first,
      m.descriptionSet,
      m.states,
      m.contexts,
      w.newUserBalances.pending,
      w.userBalanceDeltas.pending,
      w.clearings.eventIds,
      w.clearings.users,
      w.clearings.currencies,
      w.clearings.milestoneIds,
      w.clearings.amounts,
      w.clearings.clearsAt,
      w.cleared.causationIds,
      w.cleared.eventIds,
      w.clearings.clearedBy,
    ],
  });
  const row = onlyRow(r.rows, 'the batch write');
  return { fenced: row.fenced !== '0', postings: Number(row.postings) };
}

export interface MilestoneRows {
  ids: string[];
  projects: string[];
  employers: string[];
  freelancers: string[];
  currencies: string[];
  amounts: string[];
  held: string[];
  released: string[];
  returned: string[];
  statuses: string[];
  versions: number[];
  descriptions: string[];
  createdAt: string[];
  updatedAt: string[];
  employerFees: string[];
  freelancerFees: string[];
  /** When a timer of the milestone is due (the timers look here); null when none runs. */
  dueAt: (string | null)[];
  disputeStages: string[];
  /** Whether the batch holds the milestone's first event (what is set at creation): inserted, else only updated. */
  first: boolean[];
  /** Whether an event of the batch changed the description (UpdateMilestoneDescription). */
  descriptionSet: boolean[];
  /** The state name, and what of the context the batch's events carried (JSON), merged over the row's. */
  states: string[];
  contexts: string[];
}

/** The last stream sequence the ledger applied. */
export async function readCursor(c: PoolClient): Promise<number> {
  const r = await c.query<{ stream_seq: string }>({
    name: 'ledger-read-cursor',
    text: 'SELECT stream_seq::text AS stream_seq FROM ledger_cursor',
  });
  return Number(r.rows[0]?.stream_seq ?? 0);
}

export async function readOutbox(c: PoolClient): Promise<{ seq: number; payload: unknown }[]> {
  const r = await c.query<{ stream_seq: string; payload: unknown }>(
    'SELECT stream_seq::text AS stream_seq, payload FROM ledger_outbox ORDER BY stream_seq',
  );
  return r.rows.map((row) => ({ seq: Number(row.stream_seq), payload: row.payload }));
}

export async function deleteOutbox(c: PoolClient, upTo: number): Promise<void> {
  await c.query('DELETE FROM ledger_outbox WHERE stream_seq <= $1', [upTo]);
}

/**
 * The stream the cursor belongs to (its creation time), recorded when first null. Returns
 * what is recorded, which differs from `created` when the stream was made again.
 */
export async function cursorStream(c: PoolClient, created: string): Promise<string> {
  await c.query('UPDATE ledger_cursor SET stream_created = $1 WHERE stream_created IS NULL', [created]);
  const r = await c.query<{ stream_created: string }>('SELECT stream_created FROM ledger_cursor');
  return onlyRow(r.rows, 'SELECT stream_created').stream_created;
}

/** Moves a cursor still at 0 to `seq` (the ack floor of an earlier version's consumer); false if it was not at 0. */
export async function seedCursor(c: PoolClient, seq: number): Promise<boolean> {
  const r = await c.query('UPDATE ledger_cursor SET stream_seq = $1, updated_at = now() WHERE stream_seq = 0', [seq]);
  return r.rowCount === 1;
}
