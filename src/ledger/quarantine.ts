import { decode } from '../events/cloudevent.js';
import type { EventLog } from '../events/log.js';
import { applyBatch } from './apply.js';
import type { Pool } from './db.js';
import { outcomeEvent } from './worker.js';

/**
 * The ledger's quarantine (migration 005): messages of the stream it moved aside instead of
 * applying. A person lists them, then replays one (applies it now, once the cause is fixed)
 * or drops it (it is not money: a forgery, a test message). Each is resolved once.
 */
export interface Quarantined {
  stream_seq: string;
  subject: string;
  event_id: string | null;
  event_type: string | null;
  reason: string;
  detail: string;
  signed: boolean;
  quarantined_at: Date;
  resolution: string | null;
}

export async function listQuarantine(pool: Pool, o: { all?: boolean } = {}): Promise<Quarantined[]> {
  const r = await pool.query<Quarantined>(
    `SELECT stream_seq::text, subject, event_id, event_type, reason, detail, signed, quarantined_at, resolution
     FROM ledger_quarantine ${o.all ? '' : 'WHERE resolution IS NULL'} ORDER BY stream_seq LIMIT 1000`,
  );
  return r.rows;
}

/** Marks an open entry dropped; false if there is none at that sequence. */
export async function dropQuarantined(pool: Pool, seq: number, note: string): Promise<boolean> {
  const r = await pool.query(
    `UPDATE ledger_quarantine SET resolution = 'dropped', resolved_at = now(), resolved_note = $2 WHERE stream_seq = $1 AND resolution IS NULL`,
    [seq, note],
  );
  return r.rowCount === 1;
}

/**
 * Applies an open entry now and publishes its outcome, then marks it replayed. Only the
 * engine's own (signed) events: a message it did not sign is never money. Throws what applying
 * it throws (the entry stays open). Safe while workers run and if interrupted: the posting is
 * keyed by the event id (a second replay applies nothing), balances move by deltas, and the
 * database's CHECKs back the ledger's own.
 */
export async function replayQuarantined(
  pool: Pool,
  log: EventLog,
  seq: number,
  note: string,
): Promise<'replayed' | 'not_found' | 'unsigned'> {
  const client = await pool.connect();
  let failure: Error | undefined;
  try {
    const r = await client.query<{ payload: string; signed: boolean }>(
      'SELECT payload, signed FROM ledger_quarantine WHERE stream_seq = $1 AND resolution IS NULL',
      [seq],
    );
    const row = r.rows[0];
    if (!row) return 'not_found';
    if (!row.signed) return 'unsigned';
    const event = decode(new TextEncoder().encode(row.payload));
    const outcomes = await applyBatch(client, [{ seq, event }]);
    await Promise.all(
      outcomes.map((o) => log.append(log.names.outcome(o.causationId), outcomeEvent(log.names.source, o), null, {}, { consequence: true })),
    );
    await client.query(
      `UPDATE ledger_quarantine SET resolution = 'replayed', resolved_at = now(), resolved_note = $2 WHERE stream_seq = $1`,
      [seq, note],
    );
    return 'replayed';
  } catch (err) {
    failure = err as Error;
    throw err;
  } finally {
    client.release(failure);
  }
}
