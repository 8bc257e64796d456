import { expect } from 'vitest';
import type { Engine } from '../../src/engine.js';
import { ledgerBehind, runAudit } from '../../src/ledger/auditor.js';
import { decode } from '../../src/events/cloudevent.js';
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
