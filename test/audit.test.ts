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
        await c.query(
          `INSERT INTO postings (event_id, stream_seq, kind, result, milestone_id, currency, amount) VALUES ($1, 0, $2, 'ok', $3, 'USD', 10)`,
          [ev, kind, id],
        );
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

  it('finds a milestone settled twice, and an arbitration fee held after its dispute ended', async () => {
    await deposit(t.client, 'emp-s', '20.00');
    const id = await funded(t.client, 'emp-s', 'fl-s', '10.00', 'proj-s');
    await t.client.m('OpenDispute', 'fl-s', {
      milestone_id: id,
      reason: 'x',
      claimed_amount: { currency_code: 'USD', amount: '10.00' },
      idempotency_key: key(),
    });
    await t.client.m('ProposeSettlement', 'emp-s', {
      milestone_id: id,
      freelancer_amount: { currency_code: 'USD', amount: '4.00' },
      idempotency_key: key(),
    });
    await t.client.m('AcceptSettlement', 'fl-s', { milestone_id: id, idempotency_key: key() });
    await ledgerCaughtUp(t.engine);
    const before = (await audit(t.engine.pool)).filter((v) => v.detail.includes(id));
    expect(before).toEqual([]);

    // A second hold and a second settlement, posted consistently; and a fee left in an arbitration account.
    const c = await t.engine.pool.connect();
    try {
      await c.query('BEGIN');
      const hold = randomUUID();
      await c.query(
        `INSERT INTO postings (event_id, stream_seq, kind, result, milestone_id, currency, amount) VALUES ($1, 0, 'hold', 'ok', $2, 'USD', 10)`,
        [hold, id],
      );
      await c.query(`INSERT INTO entries (event_id, account_id, amount) VALUES ($1, 'available:USD:emp-s', -10), ($1, $2, 10)`, [
        hold,
        `escrow:${id}`,
      ]);
      const settle = randomUUID();
      await c.query(
        `INSERT INTO postings (event_id, stream_seq, kind, result, milestone_id, currency, amount, freelancer_amount) VALUES ($1, 0, 'settle', 'ok', $2, 'USD', 10, 4)`,
        [settle, id],
      );
      await c.query(
        `INSERT INTO entries (event_id, account_id, amount) VALUES ($1, $2, -10), ($1, 'available:USD:fl-s', 4), ($1, 'available:USD:emp-s', 6)`,
        [settle, `escrow:${id}`],
      );
      await c.query(`UPDATE accounts SET balance = balance - 4 WHERE account_id = 'available:USD:emp-s'`);
      await c.query(`UPDATE accounts SET balance = balance + 4 WHERE account_id = 'available:USD:fl-s'`);
      await c.query(`UPDATE user_balances SET available = available - 4 WHERE user_id = 'emp-s'`);
      await c.query(`UPDATE user_balances SET available = available + 4 WHERE user_id = 'fl-s'`);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const found = (await audit(t.engine.pool)).filter((v) => v.detail.includes(id)).map((v) => v.check);
    expect(found).toContain('milestone_matches_postings');

    await t.engine.pool.query(
      `INSERT INTO accounts (account_id, kind, owner_id, currency, balance) VALUES ($1, 'arbitration', 'fl-s', 'USD', 0)`,
      [`arbitration:${id}:fl-s`],
    );
    await t.engine.pool.query(`UPDATE accounts SET balance = 5 WHERE account_id = $1`, [`arbitration:${id}:fl-s`]);
    expect((await audit(t.engine.pool)).map((v) => v.check)).toContain('arbitration_fee_held_while_disputed');
  });
});
