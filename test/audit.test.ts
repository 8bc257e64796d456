import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { audit } from '../src/ledger/audit.js';
import { useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine();

describe('the auditor', () => {
  it('finds a milestone paid twice even when every balance agrees with the postings', async () => {
    await deposit(t.client, 'emp-a', '30.00');
    const id = await funded(t.client, 'emp-a', 'fl-a', '10.00', 'proj-a');
    await t.client.m('ReleaseMilestone', 'emp-a', { milestone_id: id, idempotency_key: key() });
    await ledgerCaughtUp(t.engine);
    expect(await audit(t.engine.pool)).toEqual([]);

    // A second hold and a second release of the same milestone, posted consistently:
    // what two distinct money events for one milestone would leave behind.
    const c = await t.engine.pool.connect();
    try {
      await c.query('BEGIN');
      for (const [kind, from, to] of [
        ['hold', 'available:USD:emp-a', `escrow:${id}`],
        ['release', `escrow:${id}`, 'available:USD:fl-a'],
      ] as const) {
        const ev = randomUUID();
        await c.query(`INSERT INTO postings (event_id, stream_seq, kind, result, milestone_id, currency, amount) VALUES ($1, 0, $2, 'ok', $3, 'USD', 10)`, [ev, kind, id]);
        await c.query(`INSERT INTO entries (event_id, account_id, amount) VALUES ($1, $2, -10), ($1, $3, 10)`, [ev, from, to]);
        await c.query(`UPDATE accounts SET balance = balance - 10 WHERE account_id = $1`, [from]);
        await c.query(`UPDATE accounts SET balance = balance + 10 WHERE account_id = $1`, [to]);
      }
      await c.query(`UPDATE user_balances SET available = available - 10 WHERE user_id = 'emp-a'`);
      await c.query(`UPDATE user_balances SET available = available + 10 WHERE user_id = 'fl-a'`);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const found = (await audit(t.engine.pool)).map((v) => v.check);
    expect(found).toContain('milestone_matches_postings');
  });

  it('finds a projection that drifted from the ledger', async () => {
    await t.engine.pool.query(`UPDATE user_balances SET incoming = incoming + 999 WHERE user_id = 'emp-a'`);
    expect((await audit(t.engine.pool)).map((v) => v.check)).toContain('projection_matches_ledger');
  });
});
