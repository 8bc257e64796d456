import { expect } from 'vitest';
import type { Engine } from '../../src/engine.js';
import { ledgerBehind, runAudit } from '../../src/ledger/auditor.js';
import { decode } from '../../src/events/cloudevent.js';
import { CHANGE_SCHEMAS } from '../../actors/events.js';
import { parseEventType, validateChange } from '../../src/events/schemas.js';
import { SIGNATURE_HEADER } from '../../src/events/signing.js';
import { applyBatch, type StreamEvent } from '../../src/ledger/apply.js';
import { eventually, type TestEngine } from './engine.js';

/** Waits until the ledger's cursor has reached the end of the stream. */
export async function ledgerCaughtUp(engine: Engine, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => expect(await ledgerBehind(engine.log, engine.pool)).toBe(0), timeoutMs);
}

/** The auditor's verdict on the engine's namespace: no violation, nothing left to apply. */
export async function expectLedgerSound(engine: Engine): Promise<void> {
  const report = await runAudit(engine.log, engine.pool);
  expect(report.violations).toEqual([]);
  expect(report.moneyEvents).toBe(report.postings);
}

/** Everything the ledger worker writes, to compare before and after applying events again. */
export async function ledgerSnapshot(t: TestEngine) {
  const q = async (text: string) => (await t.db.query(text)).rows;
  return {
    accounts: await q('SELECT account_id, owner_id, balance::text FROM accounts ORDER BY account_id'),
    postings: await q(
      'SELECT event_id::text, kind, result, amount::text, fee::text, freelancer_amount::text FROM postings ORDER BY event_id',
    ),
    entries: (await q('SELECT count(*)::int AS n FROM entries'))[0].n,
    balances: await q('SELECT * FROM user_balances ORDER BY user_id, currency'),
    milestones: await q(
      'SELECT milestone_id::text, status, version, held::text, released::text, returned::text, employer_fee::text, freelancer_fee::text, due_at, dispute_stage FROM milestones ORDER BY milestone_id',
    ),
    reviews: await q('SELECT project_id, reviewer_id, rating FROM reviews ORDER BY project_id, reviewer_id'),
  };
}

/** Every event of the stream but the ledger's own outcomes, in order. */
export async function allEvents(t: TestEngine): Promise<StreamEvent[]> {
  const { jsm, names } = t.engine.log;
  const info = await jsm.streams.info(names.stream);
  const out: StreamEvent[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.direct.getMessage(names.stream, { seq });
    if (m && !m.subject.includes('.ledger.')) out.push({ seq: m.seq, event: decode(m.data) });
  }
  return out;
}

/**
 * What a crash between commit and ack, or a second worker, does: the whole stream applied
 * again in one batch, in halves, and with every event twice in one batch. Returns the count.
 */
export async function reapplyWholeStream(t: TestEngine): Promise<number> {
  const events = await allEvents(t);
  const half = Math.floor(events.length / 2);
  const client = await t.engine.pool.connect();
  try {
    await applyBatch(client, events);
    await applyBatch(client, events.slice(0, half));
    await applyBatch(client, events.slice(half));
    await applyBatch(client, [...events, ...events]);
  } finally {
    client.release();
  }
  return events.length;
}

/**
 * Every event the engine signed on the namespace's stream, checked against the schema of its
 * type (actors/events.ts): run after each file's tests, so every event the integration tests
 * produce is validated. Returns the problems (empty when all are well-shaped) and the count.
 */
export async function invalidEvents(engine: Engine): Promise<{ checked: number; problems: string[] }> {
  const { jsm, js, names } = engine.log;
  const info = await jsm.streams.info(names.stream);
  const problems: string[] = [];
  let checked = 0;
  if (info.state.messages === 0) return { checked, problems };
  const consumer = await js.consumers.get(names.stream);
  const messages = await consumer.consume({ max_bytes: 4 * 1024 * 1024 });
  for await (const m of messages) {
    if (engine.log.verified(m.subject, m.data, m.headers?.get(SIGNATURE_HEADER), m.seq)) {
      try {
        const event = decode(m.data);
        const parsed = parseEventType(event.type);
        // The engine's own events only: a signed message of another source is one the poison tests forge.
        if (parsed && parsed.entity in CHANGE_SCHEMAS && event.source === names.source) {
          checked++;
          const wrong = validateChange(parsed.entity, parsed.type, (event.data as { change?: unknown }).change);
          if (wrong) problems.push(`${event.type} seq ${m.seq}: ${wrong}`);
        }
      } catch {
        // Signed but not a CloudEvent: the poison tests make such messages on purpose.
      }
    }
    // The last sequence may be a deleted message: stop when nothing is left to deliver.
    if (m.seq >= info.state.last_seq || m.info.pending === 0) break;
  }
  await messages.close();
  return { checked, problems };
}
