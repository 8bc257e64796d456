import type { PoolClient } from './db.js';
import type { ReviewRow } from './intents.js';

/**
 * Every statement the ledger worker runs, one function each, as named prepared statements.
 * Arrays go in through unnest so a whole batch is one round trip per statement.
 */

export async function ensureAccounts(c: PoolClient, ids: string[], kinds: string[], owners: string[], currencies: string[]): Promise<void> {
  await c.query({
    name: 'ledger-ensure-accounts',
    text: `INSERT INTO accounts (account_id, kind, owner_id, currency)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ORDER BY 1
           ON CONFLICT (account_id) DO NOTHING`,
    values: [ids, kinds, owners, currencies],
  });
}

/** Locks the batch's accounts in one fixed order (by id), so two workers never deadlock. */
export async function lockAccounts(c: PoolClient, ids: string[]): Promise<Map<string, string>> {
  const r = await c.query<{ account_id: string; balance: string }>({
    name: 'ledger-lock-accounts',
    text: 'SELECT account_id, balance::text AS balance FROM accounts WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE',
    values: [ids],
  });
  return new Map(r.rows.map((row) => [row.account_id, row.balance]));
}

export async function existingPostings(c: PoolClient, eventIds: string[]): Promise<Map<string, string>> {
  const r = await c.query<{ event_id: string; result: string }>({
    name: 'ledger-existing-postings',
    text: 'SELECT event_id::text AS event_id, result FROM postings WHERE event_id = ANY($1::uuid[])',
    values: [eventIds],
  });
  return new Map(r.rows.map((row) => [row.event_id, row.result]));
}

export interface ReferenceRow {
  reference: string;
  kind: string;
  user_id: string;
  currency: string;
  amount: string;
  event_id: string;
}

export async function existingReferences(c: PoolClient, references: string[]): Promise<Map<string, ReferenceRow>> {
  const r = await c.query<ReferenceRow>({
    name: 'ledger-existing-references',
    text: `SELECT reference, kind, user_id, currency, amount::text AS amount, event_id::text AS event_id
           FROM external_references WHERE reference = ANY($1::text[])`,
    values: [references],
  });
  return new Map(r.rows.map((row) => [row.reference, row]));
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

/** Returns how many were inserted: with the accounts locked first, never fewer than given. */
export async function insertPostings(c: PoolClient, p: PostingRows): Promise<number> {
  const r = await c.query({
    name: 'ledger-insert-postings',
    // created_at is the wall clock at insert, not the transaction start: the ledger lag
    // (command answered -> posting written) is measured from it.
    text: `INSERT INTO postings (event_id, stream_seq, kind, result, milestone_id, user_id, currency, amount, fee, freelancer_amount, created_at)
           SELECT u.*, clock_timestamp()
           FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[]) AS u
           ON CONFLICT (event_id) DO NOTHING`,
    values: [p.eventIds, p.seqs, p.kinds, p.results, p.milestoneIds, p.userIds, p.currencies, p.amounts, p.fees, p.freelancerAmounts],
  });
  return r.rowCount ?? 0;
}

export async function insertEntries(c: PoolClient, eventIds: string[], accountIds: string[], amounts: string[]): Promise<void> {
  await c.query({
    name: 'ledger-insert-entries',
    text: `INSERT INTO entries (event_id, account_id, amount)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[])`,
    values: [eventIds, accountIds, amounts],
  });
}

export async function addToBalances(c: PoolClient, accountIds: string[], deltas: string[]): Promise<void> {
  await c.query({
    name: 'ledger-add-to-balances',
    text: `UPDATE accounts a SET balance = a.balance + d.delta
           FROM unnest($1::text[], $2::numeric[]) AS d(account_id, delta)
           WHERE a.account_id = d.account_id`,
    values: [accountIds, deltas],
  });
}

export async function insertReferences(c: PoolClient, r: { refs: string[]; kinds: string[]; users: string[]; currencies: string[]; amounts: string[]; eventIds: string[] }): Promise<void> {
  await c.query({
    name: 'ledger-insert-references',
    text: `INSERT INTO external_references (reference, kind, user_id, currency, amount, event_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::uuid[])`,
    values: [r.refs, r.kinds, r.users, r.currencies, r.amounts, r.eventIds],
  });
}

export async function ensureUserBalances(c: PoolClient, users: string[], currencies: string[]): Promise<void> {
  await c.query({
    name: 'ledger-ensure-user-balances',
    text: `INSERT INTO user_balances (user_id, currency)
           SELECT * FROM unnest($1::text[], $2::text[]) ORDER BY 1, 2
           ON CONFLICT (user_id, currency) DO NOTHING`,
    values: [users, currencies],
  });
}

export async function addToUserBalances(
  c: PoolClient,
  d: { users: string[]; currencies: string[]; available: string[]; held: string[]; incoming: string[] },
): Promise<void> {
  await c.query({
    name: 'ledger-add-to-user-balances',
    text: `UPDATE user_balances b
           SET available = b.available + d.available, held = b.held + d.held, incoming = b.incoming + d.incoming
           FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[], $5::numeric[]) AS d(user_id, currency, available, held, incoming)
           WHERE b.user_id = d.user_id AND b.currency = d.currency`,
    values: [d.users, d.currencies, d.available, d.held, d.incoming],
  });
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
}

/** Projects milestone states; an older version never overwrites a newer one. */
export async function upsertMilestones(c: PoolClient, m: MilestoneRows): Promise<void> {
  await c.query({
    name: 'ledger-upsert-milestones',
    text: `INSERT INTO milestones (milestone_id, project_id, employer_id, freelancer_id, currency, amount, held, released, returned,
                                   status, version, description, created_at, updated_at, employer_fee, freelancer_fee, due_at, dispute_stage)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::numeric[], $8::numeric[],
                                $9::numeric[], $10::text[], $11::int[], $12::text[], $13::timestamptz[], $14::timestamptz[],
                                $15::numeric[], $16::numeric[], $17::timestamptz[], $18::text[])
           ON CONFLICT (milestone_id) DO UPDATE SET
             held = EXCLUDED.held, released = EXCLUDED.released, returned = EXCLUDED.returned, status = EXCLUDED.status,
             version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, employer_fee = EXCLUDED.employer_fee,
             freelancer_fee = EXCLUDED.freelancer_fee, due_at = EXCLUDED.due_at, dispute_stage = EXCLUDED.dispute_stage
           WHERE milestones.version < EXCLUDED.version`,
    values: [m.ids, m.projects, m.employers, m.freelancers, m.currencies, m.amounts, m.held, m.released, m.returned, m.statuses, m.versions, m.descriptions, m.createdAt, m.updatedAt, m.employerFees, m.freelancerFees, m.dueAt, m.disputeStages],
  });
}

/** Projects reviews; one per reviewer per project, so a redelivered event inserts nothing. */
export async function insertReviews(c: PoolClient, r: ReviewRow[]): Promise<void> {
  await c.query({
    name: 'ledger-insert-reviews',
    text: `INSERT INTO reviews (project_id, reviewer_id, reviewee_id, rating, comment, event_id, created_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::uuid[], $7::timestamptz[])
           ON CONFLICT DO NOTHING`,
    values: [r.map((x) => x.projectId), r.map((x) => x.reviewerId), r.map((x) => x.revieweeId), r.map((x) => x.rating), r.map((x) => x.comment), r.map((x) => x.eventId), r.map((x) => x.at)],
  });
}

/** The last stream sequence the ledger applied. */
export async function readCursor(c: PoolClient): Promise<number> {
  const r = await c.query<{ stream_seq: string }>({ name: 'ledger-read-cursor', text: 'SELECT stream_seq::text AS stream_seq FROM ledger_cursor' });
  return Number(r.rows[0]?.stream_seq ?? 0);
}

/**
 * Moves the cursor from `from` to `to` if it is still at `from` (the fence: false means
 * another worker moved it), and forgets the outcomes published up to `published`.
 */
export async function moveCursor(c: PoolClient, from: number, to: number, published: number): Promise<boolean> {
  const r = await c.query<{ moved: string }>({
    name: 'ledger-move-cursor',
    text: `WITH moved AS (UPDATE ledger_cursor SET stream_seq = $2, updated_at = now() WHERE stream_seq = $1 RETURNING 1),
                forgotten AS (DELETE FROM ledger_outbox WHERE stream_seq <= $3)
           SELECT count(*)::text AS moved FROM moved`,
    values: [from, to, published],
  });
  return r.rows[0]?.moved === '1';
}

export async function insertOutbox(c: PoolClient, seq: number, causationIds: string[], payloads: string[]): Promise<void> {
  await c.query({
    name: 'ledger-insert-outbox',
    text: `INSERT INTO ledger_outbox (causation_id, stream_seq, payload)
           SELECT u.causation_id, $1, u.payload FROM unnest($2::text[], $3::jsonb[]) AS u(causation_id, payload)
           ON CONFLICT (causation_id) DO UPDATE SET stream_seq = EXCLUDED.stream_seq, payload = EXCLUDED.payload`,
    values: [seq, causationIds, payloads],
  });
}

export async function readOutbox(c: PoolClient): Promise<{ seq: number; payload: unknown }[]> {
  const r = await c.query<{ stream_seq: string; payload: unknown }>('SELECT stream_seq::text AS stream_seq, payload FROM ledger_outbox ORDER BY stream_seq');
  return r.rows.map((row) => ({ seq: Number(row.stream_seq), payload: row.payload }));
}

export async function deleteOutbox(c: PoolClient, upTo: number): Promise<void> {
  await c.query('DELETE FROM ledger_outbox WHERE stream_seq <= $1', [upTo]);
}
