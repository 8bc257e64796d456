import { decode } from '../events/cloudevent.js';
import { SIGNATURE_HEADER } from '../events/signing.js';
import type { EventLog } from '../events/log.js';
import { audit, auditStream, type Violation } from './audit.js';
import { signedSince, type Pool } from './db.js';
import { classify } from './intents.js';
import { readCursor } from './sql.js';

/**
 * How far the ledger is behind the stream: sequences after its cursor (0 when every event,
 * the ledger's own outcomes included, is applied). Unknown (a server did not answer) is Infinity.
 */
export async function ledgerBehind(log: EventLog, pool: Pool): Promise<number> {
  try {
    const [stream, client] = await Promise.all([log.jsm.streams.info(log.names.stream), pool.connect()]);
    try {
      return Math.max(0, stream.state.last_seq - (await readCursor(client)));
    } finally {
      client.release();
    }
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

export interface AuditReport {
  ok: boolean;
  violations: Violation[];
  streamMessages: number;
  moneyEvents: number;
  postings: number;
  /** Events the ledger consumer had not applied when the audit ran. */
  ledgerPending: number;
  /** Messages not signed by the engine that the ledger moved aside (not money; reported, not a violation). */
  forgeriesQuarantined: number;
}

/**
 * The auditor: waits (bounded) for the ledger to catch up, reads the whole stream, and checks
 * the ledger's invariants and that every money event was applied exactly once.
 */
export async function runAudit(log: EventLog, pool: Pool, waitMs = 30_000): Promise<AuditReport> {
  const { jsm, js, names } = log;
  const created = (await jsm.streams.info(names.stream)).created;
  log.trustUnsignedBefore(await signedSince(pool, { created }).catch(() => 0));
  const until = Date.now() + waitMs;
  let pending: number;
  for (;;) {
    // Unknown (a server did not answer) counts as behind, not as caught up.
    pending = await ledgerBehind(log, pool);
    if (pending === 0 || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const stream = await jsm.streams.info(names.stream);
  // Messages the ledger moved aside and nobody replayed are not expected to have postings; the signed ones are reported below.
  const setAside = new Set(
    (
      await pool.query<{ stream_seq: string }>(
        "SELECT stream_seq::text FROM ledger_quarantine WHERE resolution IS DISTINCT FROM 'replayed'",
      )
    ).rows.map((r) => Number(r.stream_seq)),
  );
  const money: string[] = [];
  let read = 0;
  const take = (seq: number, subject: string, data: Uint8Array, signature: string | undefined) => {
    read++;
    try {
      // Only the engine's own events are money; anything else on the subjects is a forgery the ledger moved aside.
      const event = decode(data);
      if (!setAside.has(seq) && log.verified(subject, data, signature, seq) && classify(seq, event).intent) money.push(event.id);
    } catch {
      // Not a CloudEvent: not a money event.
    }
  };
  if (stream.state.messages > 0) {
    const consumer = await js.consumers.get(names.stream);
    const lastSeq = stream.state.last_seq;
    let lastRead = 0;
    // Pulled by size, not count: messages may be up to the stream's largest (64 KiB by default).
    const messages = await consumer.consume({ max_bytes: 4 * 1024 * 1024 });
    for await (const m of messages) {
      take(m.seq, m.subject, m.data, m.headers?.get(SIGNATURE_HEADER));
      lastRead = m.seq;
      // The last sequence may be a deleted message: stop when nothing is left to deliver.
      if (m.seq >= lastSeq || m.info.pending === 0) break;
    }
    await messages.close();
    // Right after a cluster restarts, a consumer can report nothing pending before the end (a
    // run once had 105 postings "without an event" the subjects' own reads all found): what
    // is left up to the last sequence is read one by one (usually nothing, or a deleted tail).
    for (let seq = lastRead + 1; seq <= lastSeq; seq++) {
      const m = await log.messageAt(seq);
      if (m) take(m.seq, m.subject, m.data, m.signature);
    }
  }
  const violations = [...(await audit(pool)), ...(await auditStream(pool, money))];
  // The engine's own events the ledger could not apply: money a person must look at.
  const held = await pool.query<{ stream_seq: string; reason: string; detail: string }>(
    'SELECT stream_seq::text, reason, detail FROM ledger_quarantine WHERE resolution IS NULL AND signed ORDER BY stream_seq',
  );
  for (const q of held.rows) violations.push({ check: 'quarantined', detail: `stream seq ${q.stream_seq}: ${q.reason} (${q.detail})` });
  const forged = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM ledger_quarantine WHERE NOT signed')).rows[0]?.n ?? 0);
  if (pending > 0)
    violations.push({
      check: 'ledger_caught_up',
      detail: `${Number.isFinite(pending) ? pending : 'an unknown number of'} events not yet applied after ${waitMs} ms`,
    });
  const postings = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM postings')).rows[0]?.n ?? 0);
  return {
    ok: violations.length === 0,
    violations,
    streamMessages: read,
    moneyEvents: money.length,
    postings,
    ledgerPending: pending,
    forgeriesQuarantined: forged,
  };
}
