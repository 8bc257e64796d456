import { describe, expect, it } from 'vitest';
import { useEngine } from './helpers/engine.js';
import { balance, deposit, key } from './helpers/flows.js';
import { usd } from './helpers/client.js';
import { allEvents, ledgerCaughtUp } from './helpers/ledger.js';
import { audit } from '../src/ledger/audit.js';
import { feeReservationIdFor } from '../src/ids.js';

/**
 * Debits an account actor decided are decided once, even when asked again after the log's
 * duplicate window (here 1 s; 120 s by default) has passed: an arbitration fee whose saga a sweep
 * resumes (its gateway died before the milestone learned the answer), a withdrawal the payments
 * service retries with its reference the next day.
 */
const t = useEngine({ env: { ESCROW_DUPLICATE_WINDOW_MS: '1000' } });

describe('decisions past the duplicate window', () => {
  it('a fee asked again after the window gets the first decision: charged once, never refused after it was charged', async () => {
    const payer = 'payer-fd1';
    await deposit(t.client, payer, '5.00');
    const funds = t.engine.milestones!.funds;
    const ask = {
      milestoneId: '11111111-2222-8333-8444-000000000001',
      causationId: '11111111-2222-8333-8444-000000000002',
      currency: 'USD',
      amount: '5.00',
      time: new Date().toISOString(),
    };
    expect(await funds.reserveFee(payer, ask)).toBe(true);
    await ledgerCaughtUp(t.engine);
    expect(await balance(t.client, payer)).toMatchObject({ available: '0.00', held: '5.00' });
    await new Promise((r) => setTimeout(r, 1_500));
    // Asked again: the log would store a second decision under the same id now; the first one stands.
    expect(await funds.reserveFee(payer, ask)).toBe(true);
    await deposit(t.client, payer, '5.00');
    expect(await funds.reserveFee(payer, ask)).toBe(true);
    await ledgerCaughtUp(t.engine);
    const id = feeReservationIdFor(ask.causationId);
    const decisions = (await allEvents(t)).filter((e) => e.event.id === id);
    expect(decisions.map((e) => e.event.type)).toEqual(['escrow.account.fee_reserved.v1']);
    expect(await balance(t.client, payer)).toMatchObject({ available: '5.00', held: '5.00' });
    // The fee was asked for a milestone this test made up: the auditor sees a fee with no dispute, nothing else.
    expect((await audit(t.engine.pool)).map((v) => v.check).sort()).toEqual([
      'arbitration_fee_held_while_disputed',
      'one_arbitration_fee_per_party',
    ]);
  });

  it('a withdrawal retried with its reference after the window is answered as applied, even with the rest spent since', async () => {
    const user = 'payee-fd2';
    await deposit(t.client, user, '20.00');
    const ref = key('w');
    const first = await t.client.a('Withdraw', user, { amount: usd('5.00'), external_reference: ref });
    expect(first.status).toBe('APPLIED');
    expect((await t.client.a('Withdraw', user, { amount: usd('15.00'), external_reference: key('w') })).status).toBe('APPLIED');
    await ledgerCaughtUp(t.engine);
    await new Promise((r) => setTimeout(r, 1_500));
    // The payments service retries the first one (its answer was lost): it was applied, not refused for funds.
    const again = await t.client.a('Withdraw', user, { amount: usd('5.00'), external_reference: ref });
    expect(again).toMatchObject({ status: 'APPLIED', operation_id: first.operation_id });
    await ledgerCaughtUp(t.engine);
    expect(await balance(t.client, user)).toMatchObject({ available: '0.00', held: '0.00' });
    expect((await allEvents(t)).filter((e) => e.event.id === first.operation_id)).toHaveLength(1);
  });

  // Last in this file: it stops the ledger worker.
  it('with the ledger behind, the first decision is found on the account subject past its cursor', async () => {
    const payer = 'payer-fd3';
    await deposit(t.client, payer, '5.00');
    await ledgerCaughtUp(t.engine);
    await t.engine.worker!.stop();
    const funds = t.engine.milestones!.funds;
    const ask = {
      milestoneId: '11111111-2222-8333-8444-000000000003',
      causationId: '11111111-2222-8333-8444-000000000004',
      currency: 'USD',
      amount: '5.00',
      time: new Date().toISOString(),
    };
    expect(await funds.reserveFee(payer, ask)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_500));
    // Not posted (no worker runs), past the window: read from the log, not decided again (which would refuse it now).
    expect(await funds.reserveFee(payer, ask)).toBe(true);
    const id = feeReservationIdFor(ask.causationId);
    expect((await allEvents(t)).filter((e) => e.event.id === id).map((e) => e.event.type)).toEqual(['escrow.account.fee_reserved.v1']);
  });
});
