import { describe, expect, it } from 'vitest';
import type { EventLog } from '../src/events/log.js';
import { PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, startEngine } from './helpers/engine.js';
import { deposit, key } from './helpers/flows.js';

/**
 * The ledger's outcome can reach the gateway before the gateway has processed the ack of
 * the append that asked for it (and before its own echo). Here every milestone append's ack
 * is held back, so the outcome always comes first: the saga must still be answered at once,
 * not after the sweep or the funding wait.
 */
describe('a saga outcome that arrives before the ack of its own append', () => {
  const ACK_DELAY_MS = 300;
  const delayMilestoneAcks = (log: EventLog) => {
    const append = log.append.bind(log);
    log.append = async (subject, event, expected, extra) => {
      const ack = await append(subject, event, expected, extra);
      if (subject.includes('.milestone.')) await new Promise((r) => setTimeout(r, ACK_DELAY_MS));
      return ack;
    };
  };

  it('funding: the create is answered FUNDED right after the ack, every time', async () => {
    // A funding wait far above the sweep's 3 s: a dropped outcome would show as a slow answer.
    const t = await startEngine({ env: { ESCROW_FUNDING_WAIT_MS: '30000' } });
    try {
      await deposit(t.client, 'emp-early', '100.00');
      delayMilestoneAcks(t.engine.log);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const r = await t.client.m('CreateMilestone', 'emp-early', {
          project_id: 'p-early',
          freelancer_id: 'fl-early',
          amount: usd('1.00'),
          idempotency_key: key(),
        });
        times.push(Date.now() - t0);
        expect(r.milestone.status).toBe('FUNDED');
      }
      // Two delayed appends (project registration, milestone) and the ledger: well under the 3 s sweep.
      expect(Math.max(...times)).toBeLessThan(2_000);
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });

  it('escalation: the arbitration fee outcome is applied right after the ack', async () => {
    const t = await startEngine({
      env: {
        ESCROW_FUNDING_WAIT_MS: '30000',
        ESCROW_DISPUTE_NEGOTIATION: '1ms',
        ESCROW_FEES: JSON.stringify({ USD: { arbitration: '2.00' } }),
      },
    });
    try {
      await t.client.a('Deposit', PAYMENTS, { user_id: 'emp-esc', amount: usd('20.00'), external_reference: key() });
      await t.client.a('Deposit', PAYMENTS, { user_id: 'fl-esc', amount: usd('5.00'), external_reference: key() });
      const m = await t.client.m('CreateMilestone', 'emp-esc', {
        project_id: 'p-esc',
        freelancer_id: 'fl-esc',
        amount: usd('10.00'),
        idempotency_key: key(),
      });
      await t.client.m('OpenDispute', 'fl-esc', {
        milestone_id: m.milestone.id,
        reason: 'unpaid',
        claimed_amount: usd('10.00'),
        idempotency_key: key(),
      });
      delayMilestoneAcks(t.engine.log);
      const t0 = Date.now();
      const r = await t.client.m('EscalateDispute', 'fl-esc', { milestone_id: m.milestone.id, idempotency_key: key() });
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(r.milestone.dispute.stage).toBe('ARBITRATION');
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});
