import { expect } from 'vitest';
import type { EscrowClient } from './client.js';
import { PAYMENTS, usd } from './client.js';
import { eventually } from './engine.js';

let counter = 0;
/** A key unique within the test run. */
export function key(prefix = 'k'): string {
  return `${prefix}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function deposit(c: EscrowClient, user: string, amount: string, currency = 'USD') {
  const r = await c.a('Deposit', PAYMENTS, { user_id: user, amount: { currency_code: currency, amount }, external_reference: key('dep') });
  expect(r.status).toBe('APPLIED');
  return r;
}

export async function balance(c: EscrowClient, user: string, currency = 'USD') {
  const b = await c.a('GetBalance', user, { user_id: user, currency_code: currency });
  return { available: b.available.amount as string, held: b.held.amount as string, incoming: b.incoming.amount as string };
}

/** Waits until the user's balance is exactly `expected`. */
export async function expectBalance(
  c: EscrowClient,
  user: string,
  expected: { available: string; held: string; incoming: string },
  currency = 'USD',
) {
  await eventually(async () => expect(await balance(c, user, currency)).toEqual(expected));
}

/** Creates a funded milestone and returns its id. */
export async function funded(c: EscrowClient, employer: string, freelancer: string, amount: string, project = 'p1'): Promise<string> {
  const r = await c.m('CreateMilestone', employer, {
    project_id: project,
    freelancer_id: freelancer,
    amount: usd(amount),
    description: 'work',
    idempotency_key: key('create'),
  });
  expect(r.milestone.status).toBe('FUNDED');
  return r.milestone.id;
}
