import { decode } from '../events/cloudevent.js';
import type { EventLog } from '../events/log.js';
import { audit, auditStream, type Violation } from './audit.js';
import type { Pool } from './db.js';
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
}

/**
 * The auditor: waits (bounded) for the ledger to catch up, reads the whole stream, and checks
 * the ledger's invariants and that every money event was applied exactly once.
 */
export async function runAudit(log: EventLog, pool: Pool, waitMs = 30_000): Promise<AuditReport> {
  const { jsm, js, names } = log;
  const until = Date.now() + waitMs;
  let pending = 0;
  for (;;) {
    // Unknown (a server did not answer) counts as behind, not as caught up.
    pending = await ledgerBehind(log, pool);
    if (pending === 0 || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const stream = await jsm.streams.info(names.stream);
  const money: string[] = [];
  let read = 0;
  if (stream.state.messages > 0) {
    const consumer = await js.consumers.get(names.stream);
    const lastSeq = stream.state.last_seq;
    const messages = await consumer.consume({ max_messages: 1_000 });
    for await (const m of messages) {
      read++;
      try {
        const event = decode(m.data);
        if (classify(m.seq, event).intent) money.push(event.id);
      } catch {
        // Not a CloudEvent: not a money event.
      }
      if (m.seq >= lastSeq) break;
    }
    await messages.close();
  }
  const violations = [...(await audit(pool)), ...(await auditStream(pool, money))];
  if (pending > 0) violations.push({ check: 'ledger_caught_up', detail: `${Number.isFinite(pending) ? pending : 'an unknown number of'} events not yet applied after ${waitMs} ms` });
  const postings = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM postings')).rows[0]?.n ?? 0);
  return { ok: violations.length === 0, violations, streamMessages: read, moneyEvents: money.length, postings, ledgerPending: pending };
}
