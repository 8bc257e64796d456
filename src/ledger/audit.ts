import type { Pool } from './db.js';

/**
 * Checks the ledger's invariants from Postgres alone. Each returns the violations it found,
 * named; an empty list means the ledger holds together.
 */

export interface Violation {
  check: string;
  detail: string;
}

async function rows<R extends object>(pool: Pool, text: string): Promise<R[]> {
  return (await pool.query<R>(text)).rows;
}

export async function audit(pool: Pool): Promise<Violation[]> {
  const v: Violation[] = [];
  for (const r of await rows<{ event_id: string; sum: string }>(
    pool,
    'SELECT event_id::text, sum(amount)::text AS sum FROM entries GROUP BY event_id HAVING sum(amount) <> 0',
  )) {
    v.push({ check: 'posting_balanced', detail: `posting ${r.event_id} sums to ${r.sum}` });
  }
  for (const r of await rows<{ currency: string; held_by_users: string; world: string }>(
    pool,
    `SELECT currency, sum(balance) FILTER (WHERE kind <> 'world')::text AS held_by_users, (-sum(balance) FILTER (WHERE kind = 'world'))::text AS world
     FROM accounts GROUP BY currency
     HAVING coalesce(sum(balance) FILTER (WHERE kind <> 'world'), 0) <> coalesce(-sum(balance) FILTER (WHERE kind = 'world'), 0)`,
  )) {
    v.push({ check: 'money_conserved', detail: `${r.currency}: balances sum to ${r.held_by_users}, deposits - withdrawals = ${r.world}` });
  }
  for (const r of await rows<{ currency: string; balances: string; flows: string }>(
    pool,
    `SELECT a.currency, sum(a.balance)::text AS balances,
            (SELECT coalesce(sum(CASE WHEN p.kind = 'deposit' THEN p.amount ELSE -p.amount END), 0)
             FROM postings p WHERE p.currency = a.currency AND p.result = 'ok' AND p.kind IN ('deposit', 'withdrawal'))::text AS flows
     FROM accounts a WHERE a.kind <> 'world' GROUP BY a.currency
     HAVING sum(a.balance) <> (SELECT coalesce(sum(CASE WHEN p.kind = 'deposit' THEN p.amount ELSE -p.amount END), 0)
             FROM postings p WHERE p.currency = a.currency AND p.result = 'ok' AND p.kind IN ('deposit', 'withdrawal'))`,
  )) {
    v.push({ check: 'deposits_minus_withdrawals', detail: `${r.currency}: balances ${r.balances} != deposits - withdrawals ${r.flows}` });
  }
  for (const r of await rows<{ account_id: string; balance: string; entries: string }>(
    pool,
    `SELECT a.account_id, a.balance::text, coalesce(sum(e.amount), 0)::text AS entries
     FROM accounts a LEFT JOIN entries e USING (account_id) GROUP BY a.account_id, a.balance
     HAVING a.balance <> coalesce(sum(e.amount), 0)`,
  )) {
    v.push({ check: 'balance_matches_entries', detail: `${r.account_id}: balance ${r.balance}, entries sum ${r.entries}` });
  }
  for (const r of await rows<{ milestone_id: string; status: string }>(
    pool,
    `SELECT milestone_id::text, status FROM milestones
     WHERE status NOT IN ('REQUESTED', 'REQUEST_REJECTED', 'REQUEST_WITHDRAWN', 'PENDING_FUNDING', 'FUNDING_FAILED') AND amount <> held + released + returned`,
  )) {
    v.push({ check: 'milestone_conserved', detail: `${r.milestone_id} (${r.status}): amount != held + released + returned` });
  }
  for (const r of await rows<{ milestone_id: string }>(
    pool,
    `SELECT milestone_id::text FROM postings WHERE milestone_id IS NOT NULL AND result = 'ok'
     GROUP BY milestone_id HAVING bool_or(kind = 'return') AND sum(CASE WHEN kind = 'release' THEN amount ELSE 0 END) > 0
        AND sum(CASE WHEN kind = 'hold' THEN amount ELSE 0 END) < sum(CASE WHEN kind IN ('release', 'return') THEN amount ELSE 0 END)`,
  )) {
    v.push({ check: 'paid_once', detail: `${r.milestone_id}: released and returned more than was held` });
  }
  for (const r of await rows<{ milestone_id: string; escrow: string; held: string }>(
    pool,
    `SELECT m.milestone_id::text, coalesce(a.balance, 0)::text AS escrow, m.held::text
     FROM milestones m LEFT JOIN accounts a ON a.account_id = 'escrow:' || m.milestone_id::text
     WHERE m.status NOT IN ('REQUESTED', 'REQUEST_REJECTED', 'REQUEST_WITHDRAWN', 'PENDING_FUNDING', 'FUNDING_FAILED') AND coalesce(a.balance, 0) <> m.held`,
  )) {
    v.push({ check: 'escrow_matches_milestone', detail: `${r.milestone_id}: escrow account ${r.escrow}, milestone held ${r.held}` });
  }
  for (const r of await rows<{ user_id: string; currency: string }>(
    pool,
    `SELECT b.user_id, b.currency FROM user_balances b
     LEFT JOIN accounts a ON a.account_id = 'available:' || b.currency || ':' || b.user_id
     WHERE coalesce(a.balance, 0) <> b.available`,
  )) {
    v.push({ check: 'projection_matches_ledger', detail: `${r.user_id} ${r.currency}: user_balances.available differs from the ledger` });
  }
  return v;
}

/**
 * Every money event of the stream applied exactly once: the set of money events in the log
 * and the set of postings must be equal. Run it once the ledger has caught up.
 */
export async function auditStream(pool: Pool, moneyEventIds: Iterable<string>): Promise<Violation[]> {
  const inStream = new Set(moneyEventIds);
  const posted = new Set((await rows<{ event_id: string }>(pool, 'SELECT event_id::text FROM postings')).map((r) => r.event_id));
  const v: Violation[] = [];
  const missing = [...inStream].filter((id) => !posted.has(id));
  const extra = [...posted].filter((id) => !inStream.has(id));
  if (missing.length > 0) v.push({ check: 'stream_applied', detail: `${missing.length} money events of the stream have no posting, e.g. ${missing.slice(0, 3).join(', ')}` });
  if (extra.length > 0) v.push({ check: 'postings_from_stream', detail: `${extra.length} postings have no event in the stream, e.g. ${extra.slice(0, 3).join(', ')}` });
  return v;
}
