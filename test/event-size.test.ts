import { describe, expect, it } from 'vitest';
import { useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';

const t = useEngine();

/** Bytes of every message on a milestone's subject. */
async function sizes(id: string): Promise<number[]> {
  const out: number[] = [];
  for await (const m of t.engine.log.readSubject(t.engine.log.names.milestone(id), 0, Number.MAX_SAFE_INTEGER)) out.push(Buffer.byteLength(JSON.stringify(m.event)));
  return out;
}

describe('events stay small however long the history grows', () => {
  it('a typical milestone: each event about a kilobyte and a quarter, the fourth no bigger than the first', async () => {
    await deposit(t.client, 'emp-size', '100.00');
    const id = await funded(t.client, 'emp-size', 'fl-size', '10.00', 'p-size');
    await t.client.m('RequestRelease', 'fl-size', { milestone_id: id, idempotency_key: key() });
    await t.client.m('ReleaseMilestone', 'emp-size', { milestone_id: id, idempotency_key: key() });
    const s = await sizes(id);
    console.log(`EVENT_SIZES typical ${JSON.stringify(s)}`);
    expect(s).toHaveLength(4);
    expect(Math.max(...s)).toBeLessThan(1_500);
    expect(s[3]!).toBeLessThan(s[0]! + 100);
  });

  it('99 cancellation requests with 2000-character reasons and their rejections: 200 events under 1 MB in all, the last about the size of the third', async () => {
    await deposit(t.client, 'emp-big', '1.00');
    const id = await funded(t.client, 'emp-big', 'fl-big', '0.01', 'p-big');
    for (let i = 0; i < 99; i++) {
      await t.client.m('RequestCancellation', 'emp-big', { milestone_id: id, reason_code: 'OTHER', reason: 'x'.repeat(2_000), idempotency_key: key() });
      await t.client.m('RejectCancellation', 'fl-big', { milestone_id: id, idempotency_key: key() });
    }
    const s = await sizes(id);
    const total = s.reduce((a, b) => a + b, 0);
    console.log(`EVENT_SIZES reproduction events=${s.length} total=${total} first=${s[0]} last=${s.at(-1)} max=${Math.max(...s)}`);
    expect(s).toHaveLength(200);
    expect(total).toBeLessThan(1_000_000);
    expect(s.at(-1)!).toBeLessThan(s[2]! + 2_500);
    // The history is still whole for the parties.
    const got = await t.client.m('GetMilestone', 'emp-big', { milestone_id: id });
    expect(got.milestone.history).toHaveLength(200);
  });
});
