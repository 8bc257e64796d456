import { NEVER_HELD_STATUSES, UNFUNDED_STATUSES } from '../../actors/milestone/index.js';
import type { Pool } from './db.js';

/**
 * Checks the ledger's invariants from Postgres alone. Each returns the violations it found,
 * named; an empty list means the ledger holds together.
 */

export interface Violation {
  check: string;
  detail: string;
}

async function rows<R extends object>(pool: Pool, text: string, params: unknown[] = []): Promise<R[]> {
  return (await pool.query<R>(text, params)).rows;
}

/**
 * The machine's state kinds, as the status lists the milestone checks take (read from its
 * tags, so no status list is written here): the statuses exempt from
 * amount = held + released + returned (nothing held yet), and those that must have no hold at all.
 */
const UNFUNDED = [UNFUNDED_STATUSES];
const UNFUNDED_AND_NEVER_HELD = [UNFUNDED_STATUSES, NEVER_HELD_STATUSES];

/** The dispute stages in which an arbitration fee may be held (DISPUTE_STAGE in actors/milestone/status.ts): once one is charged, until the dispute ends. */
const FEE_HOLDING_STAGES = ['ESCALATING', 'AWAITING_FEE', 'ARBITRATION'];

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
     WHERE status <> ALL($1::text[]) AND amount <> held + released + returned`,
    UNFUNDED,
  )) {
    v.push({ check: 'milestone_conserved', detail: `${r.milestone_id} (${r.status}): amount != held + released + returned` });
  }
  for (const r of await rows<{ milestone_id: string }>(
    pool,
    `SELECT milestone_id::text FROM postings WHERE milestone_id IS NOT NULL AND result = 'ok'
     GROUP BY milestone_id HAVING sum(CASE WHEN kind = 'hold' THEN amount ELSE 0 END) < sum(CASE WHEN kind IN ('release', 'return', 'settle') THEN amount ELSE 0 END)`,
  )) {
    v.push({ check: 'paid_once', detail: `${r.milestone_id}: released and returned more than was held` });
  }
  for (const r of await rows<{ milestone_id: string; escrow: string; held: string }>(
    pool,
    `SELECT m.milestone_id::text, coalesce(a.balance, 0)::text AS escrow, m.held::text
     FROM milestones m LEFT JOIN accounts a ON a.account_id = 'escrow:' || m.milestone_id::text
     WHERE m.status <> ALL($1::text[]) AND coalesce(a.balance, 0) <> m.held`,
    UNFUNDED,
  )) {
    v.push({ check: 'escrow_matches_milestone', detail: `${r.milestone_id}: escrow account ${r.escrow}, milestone held ${r.held}` });
  }
  // Per milestone, the postings must say what the milestone says: at most one hold, of the
  // amount; releases and the freelancer's shares of settlements summing to released; returns and
  // the employer's shares summing to returned; the fees of its postings summing to its fees.
  // Two distinct money events for one milestone (a double hold, a double release, a second
  // settlement) stand out here even when every balance is consistent with them.
  for (const r of await rows<{ milestone_id: string; detail: string }>(
    pool,
    `WITH p AS (
       SELECT milestone_id,
              count(*) FILTER (WHERE kind = 'hold') AS holds,
              count(*) FILTER (WHERE kind = 'settle') AS settles,
              coalesce(sum(amount) FILTER (WHERE kind = 'hold'), 0) AS held_in,
              coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) + coalesce(sum(freelancer_amount) FILTER (WHERE kind = 'settle'), 0) AS released,
              coalesce(sum(amount) FILTER (WHERE kind = 'return'), 0) + coalesce(sum(amount - freelancer_amount) FILTER (WHERE kind = 'settle'), 0) AS returned,
              coalesce(sum(fee) FILTER (WHERE kind IN ('hold', 'release', 'settle')), 0) AS fees
       FROM postings WHERE result = 'ok' AND milestone_id IS NOT NULL GROUP BY milestone_id)
     SELECT m.milestone_id::text,
            format('status %s, amount %s, released %s, returned %s, fees %s; postings: %s holds of %s, %s settlements, released %s, returned %s, fees %s',
                   m.status, m.amount, m.released, m.returned, m.employer_fee + m.freelancer_fee, coalesce(p.holds, 0), coalesce(p.held_in, 0),
                   coalesce(p.settles, 0), coalesce(p.released, 0), coalesce(p.returned, 0), coalesce(p.fees, 0)) AS detail
     FROM milestones m LEFT JOIN p ON p.milestone_id = m.milestone_id
     WHERE coalesce(p.holds, 0) > 1 OR coalesce(p.settles, 0) > 1
        OR (m.status = ANY($2::text[]) AND coalesce(p.holds, 0) > 0)
        OR (m.status <> ALL($1::text[])
            AND (coalesce(p.held_in, 0) <> m.amount OR coalesce(p.released, 0) <> m.released OR coalesce(p.returned, 0) <> m.returned
                 OR coalesce(p.fees, 0) <> m.employer_fee + m.freelancer_fee))`,
    UNFUNDED_AND_NEVER_HELD,
  )) {
    v.push({ check: 'milestone_matches_postings', detail: `${r.milestone_id}: ${r.detail}` });
  }
  // An arbitration fee is held only while its dispute is being escalated, waits for the other party's fee, or is arbitrated.
  for (const r of await rows<{ account_id: string; balance: string; stage: string }>(
    pool,
    `SELECT a.account_id, a.balance::text, coalesce(m.dispute_stage, '?') AS stage FROM accounts a
     LEFT JOIN milestones m ON split_part(a.account_id, ':', 2) = m.milestone_id::text
     WHERE a.kind = 'arbitration' AND a.balance <> 0 AND coalesce(m.dispute_stage, '') <> ALL($1::text[])`,
    [FEE_HOLDING_STAGES],
  )) {
    v.push({
      check: 'arbitration_fee_held_while_disputed',
      detail: `${r.account_id} holds ${r.balance} for a dispute in stage ${r.stage}`,
    });
  }
  // A dispute holds one fee per party at most, and only a party's: the escalating party's, and
  // the other party's only under terms that ask both (one escalation of a dispute succeeds).
  for (const r of await rows<{ milestone_id: string; n: string; strangers: string }>(
    pool,
    `SELECT split_part(a.account_id, ':', 2) AS milestone_id, count(*)::text AS n,
            count(*) FILTER (WHERE m.milestone_id IS NULL OR a.owner_id NOT IN (m.employer_id, m.freelancer_id))::text AS strangers
     FROM accounts a LEFT JOIN milestones m ON split_part(a.account_id, ':', 2) = m.milestone_id::text
     WHERE a.kind = 'arbitration' AND a.balance <> 0
     GROUP BY 1
     HAVING count(*) FILTER (WHERE m.milestone_id IS NULL OR a.owner_id NOT IN (m.employer_id, m.freelancer_id)) > 0
        OR count(*) > CASE WHEN max(coalesce((m.context #>> '{terms,arbitrationFeeDeadlineMs}')::numeric, 0)) > 0 THEN 2 ELSE 1 END`,
  )) {
    v.push({
      check: 'one_arbitration_fee_per_party',
      detail: `${r.milestone_id}: ${r.n} arbitration accounts hold a fee, ${r.strangers} of them not a party's`,
    });
  }
  // The balance projection against the ledger, for every user on either side: available from
  // the user's account, held and incoming from the escrow accounts of their milestones.
  for (const r of await rows<{ user_id: string; currency: string; detail: string }>(
    pool,
    `WITH ledger AS (
       SELECT owner_id AS user_id, currency, balance AS available, 0::numeric AS held, 0::numeric AS incoming, 0::numeric AS pending
       FROM accounts WHERE kind = 'available'
       UNION ALL
       SELECT m.employer_id, a.currency, 0, a.balance, 0, 0 FROM accounts a JOIN milestones m ON a.account_id = 'escrow:' || m.milestone_id::text
       UNION ALL
       SELECT m.freelancer_id, a.currency, 0, 0, a.balance, 0 FROM accounts a JOIN milestones m ON a.account_id = 'escrow:' || m.milestone_id::text
       UNION ALL
       SELECT owner_id, currency, 0, balance, 0, 0 FROM accounts WHERE kind IN ('arbitration', 'reservation')
       UNION ALL
       SELECT owner_id, currency, 0, 0, 0, balance FROM accounts WHERE kind = 'pending'),
     expected AS (SELECT user_id, currency, sum(available) AS available, sum(held) AS held, sum(incoming) AS incoming, sum(pending) AS pending
                  FROM ledger GROUP BY user_id, currency)
     SELECT coalesce(e.user_id, b.user_id) AS user_id, coalesce(e.currency, b.currency) AS currency,
            format('projection %s/%s/%s/%s, ledger %s/%s/%s/%s (available/held/incoming/pending)',
                   b.available, b.held, b.incoming, b.pending, e.available, e.held, e.incoming, e.pending) AS detail
     FROM expected e FULL JOIN user_balances b ON b.user_id = e.user_id AND b.currency = e.currency
     WHERE coalesce(e.available, 0) <> coalesce(b.available, 0) OR coalesce(e.held, 0) <> coalesce(b.held, 0)
        OR coalesce(e.incoming, 0) <> coalesce(b.incoming, 0) OR coalesce(e.pending, 0) <> coalesce(b.pending, 0)`,
  )) {
    v.push({ check: 'projection_matches_ledger', detail: `${r.user_id} ${r.currency}: ${r.detail}` });
  }
  // A pending account holds exactly the user's payouts that have not cleared: a clear never takes more, a payout never skips the list.
  for (const r of await rows<{ user_id: string; currency: string; balance: string; open: string }>(
    pool,
    `WITH p AS (SELECT owner_id AS user_id, currency, balance FROM accounts WHERE kind = 'pending'),
          c AS (SELECT user_id, currency, sum(amount) AS open FROM clearings WHERE cleared_by IS NULL GROUP BY user_id, currency)
     SELECT coalesce(p.user_id, c.user_id) AS user_id, coalesce(p.currency, c.currency) AS currency,
            coalesce(p.balance, 0)::text AS balance, coalesce(c.open, 0)::text AS open
     FROM p FULL JOIN c ON c.user_id = p.user_id AND c.currency = p.currency
     WHERE coalesce(p.balance, 0) <> coalesce(c.open, 0)`,
  )) {
    v.push({
      check: 'pending_matches_clearings',
      detail: `${r.user_id} ${r.currency}: pending ${r.balance}, payouts not cleared ${r.open}`,
    });
  }
  // Escrow accounts belong to milestones; one without a milestone row is money nobody can see.
  for (const r of await rows<{ account_id: string; balance: string }>(
    pool,
    `SELECT a.account_id, a.balance::text FROM accounts a
     WHERE a.kind = 'escrow' AND a.balance <> 0
       AND NOT EXISTS (SELECT 1 FROM milestones m WHERE a.account_id = 'escrow:' || m.milestone_id::text)`,
  )) {
    v.push({ check: 'escrow_has_milestone', detail: `${r.account_id} holds ${r.balance} for no known milestone` });
  }
  // A reservation is consumed or given back whole, once: its account holds all it took, or nothing.
  for (const r of await rows<{ account_id: string; balance: string; reserved: string }>(
    pool,
    `SELECT a.account_id, a.balance::text, coalesce(p.amount, 0)::text AS reserved FROM accounts a
     LEFT JOIN postings p ON p.event_id = substr(a.account_id, 13)::uuid AND p.kind = 'reserve'
     WHERE a.kind = 'reservation' AND a.balance <> 0 AND a.balance <> coalesce(p.amount, 0)`,
  )) {
    v.push({ check: 'reservation_whole', detail: `${r.account_id} holds ${r.balance} of the ${r.reserved} reserved` });
  }
  // A reservation is consumed by at most one milestone funding and given back at most once, and never both.
  for (const r of await rows<{ account_id: string; takes: string }>(
    pool,
    `SELECT e.account_id, count(*)::text AS takes FROM entries e JOIN accounts a USING (account_id)
     WHERE a.kind = 'reservation' AND e.amount < 0 GROUP BY e.account_id HAVING count(*) > 1`,
  )) {
    v.push({ check: 'reservation_used_once', detail: `${r.account_id} was taken from ${r.takes} times` });
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
  if (missing.length > 0)
    v.push({
      check: 'stream_applied',
      detail: `${missing.length} money events of the stream have no posting, e.g. ${missing.slice(0, 3).join(', ')}`,
    });
  if (extra.length > 0)
    v.push({
      check: 'postings_from_stream',
      detail: `${extra.length} postings have no event in the stream, e.g. ${extra.slice(0, 3).join(', ')}`,
    });
  return v;
}
