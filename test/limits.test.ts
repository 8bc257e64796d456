import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { EscrowClient } from './helpers/client.js';
import { failure, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, startEngine } from './helpers/engine.js';
import { balance, deposit, funded, key } from './helpers/flows.js';

/** Opens a watch stream and resolves once its first state arrived; `end` tells how it ended. */
async function openWatch(c: EscrowClient, user: string, id: string) {
  const stream = c.stream('WatchMilestone', await c.token(user), { milestone_id: id });
  let ended: string | null = null;
  const end = new Promise<string>((resolve) => {
    stream.on('error', (e: grpc.ServiceError) => resolve((ended = `error ${e.code}`)));
    stream.on('end', () => resolve((ended = 'end')));
  });
  await new Promise<void>((resolve) => {
    stream.once('data', () => resolve());
    void end.then(() => resolve());
  });
  return { stream, end, ended: () => ended };
}

describe('per-caller limits', () => {
  it('watch streams: at most N per caller (others unaffected), each ended cleanly at its maximum age', async () => {
    const t = await startEngine({ env: { ESCROW_WATCH_PER_CALLER_MAX: '3', ESCROW_WATCH_MAX_AGE_MS: '1500' } });
    try {
      await deposit(t.client, 'emp-w', '10.00');
      const id = await funded(t.client, 'emp-w', 'fl-w', '10.00', 'p-w');
      const mine = await Promise.all([0, 1, 2].map(() => openWatch(t.client, 'fl-w', id)));
      expect(mine.every((w) => w.ended() === null)).toBe(true);
      const more = await openWatch(t.client, 'fl-w', id);
      expect(await more.end).toBe(`error ${grpc.status.RESOURCE_EXHAUSTED}`);
      // The employer is another caller: served.
      const theirs = await openWatch(t.client, 'emp-w', id);
      expect(theirs.ended()).toBeNull();
      // At the maximum age every stream ends with OK.
      expect(await Promise.all([...mine, theirs].map((w) => w.end))).toEqual(['end', 'end', 'end', 'end']);
      // And the caller may watch again.
      const again = await openWatch(t.client, 'fl-w', id);
      expect(again.ended()).toBeNull();
      again.stream.cancel();
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });

  it('a caller over its rate gets RESOURCE_EXHAUSTED RATE_LIMITED with a retry hint; other callers do not', async () => {
    const t = await startEngine({ env: { ESCROW_CALLER_READS_PER_S: '5' } });
    try {
      const results = await Promise.allSettled(Array.from({ length: 30 }, () => balance(t.client, 'greedy')));
      const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
      expect(refused.length).toBeGreaterThan(10);
      expect(refused[0]).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, reason: 'RATE_LIMITED' });
      expect(Number(refused[0].info.retry_after_ms)).toBeGreaterThan(0);
      expect(await balance(t.client, 'modest')).toEqual({ available: '0.00', held: '0.00', incoming: '0.00' });
      // Tokens come back with time.
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await balance(t.client, 'greedy')).available).toBe('0.00');
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });

  it('users filling the gateway leave the reserved share to the payments role; one user cannot hold more than its own bound', async () => {
    const t = await startEngine({ env: { ESCROW_INFLIGHT_MAX: '8', ESCROW_INFLIGHT_RESERVED: '3', ESCROW_CALLER_INFLIGHT_MAX: '2' } });
    try {
      await deposit(t.client, 'emp-a', '10.00');
      await deposit(t.client, 'emp-b', '10.00');
      const a = await funded(t.client, 'emp-a', 'fl-a', '10.00', 'p-a');
      const b = await funded(t.client, 'emp-b', 'fl-b', '10.00', 'p-b');
      // One user holds two calls (watch streams): a third is refused for that user only.
      const held = [await openWatch(t.client, 'emp-a', a), await openWatch(t.client, 'emp-a', a)];
      expect(await failure(t.client.m('GetMilestone', 'emp-a', { milestone_id: a }))).toMatchObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
        reason: 'CALLER_BUSY',
      });
      expect((await t.client.m('GetMilestone', 'fl-a', { milestone_id: a })).milestone.status).toBe('FUNDED');
      // Users fill the gateway up to its limit less the reserved share: 8 - 3 = 5 calls.
      held.push(await openWatch(t.client, 'fl-a', a), await openWatch(t.client, 'fl-a', a), await openWatch(t.client, 'emp-b', b));
      expect(held.every((w) => w.ended() === null)).toBe(true);
      expect(await failure(t.client.a('GetBalance', 'someone', { user_id: 'someone', currency_code: 'USD' }))).toMatchObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
        reason: 'GATEWAY_BUSY',
      });
      // The payments service is still served, from the reserved share.
      expect((await t.client.a('Deposit', PAYMENTS, { user_id: 'someone', amount: usd('1.00'), external_reference: key() })).status).toBe(
        'APPLIED',
      );
      for (const w of held) w.stream.cancel();
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });

  it("strangers flooding a project's mailbox do not make the employer's creates fail", async () => {
    const t = await startEngine({ env: { ESCROW_MAILBOX_MAX: '64' } });
    try {
      await deposit(t.client, 'emp-real', '1000.00');
      await funded(t.client, 'emp-real', 'fl-real', '1.00', 'p-public');
      const strangers = Array.from({ length: 400 }, (_, i) =>
        t.client
          .m('CreateMilestone', `stranger-${i % 40}`, {
            project_id: 'p-public',
            freelancer_id: 'fl-real',
            amount: usd('1.00'),
            idempotency_key: key(),
          })
          .then(
            () => 'created',
            (e) => String(e.reason),
          ),
      );
      const real = Array.from({ length: 61 }, () =>
        t.client
          .m('CreateMilestone', 'emp-real', {
            project_id: 'p-public',
            freelancer_id: 'fl-real',
            amount: usd('1.00'),
            idempotency_key: key(),
          })
          .then(
            (r) => r.milestone.status as string,
            (e) => String(e.reason),
          ),
      );
      const [s, r] = await Promise.all([Promise.all(strangers), Promise.all(real)]);
      expect(r.filter((x) => x !== 'FUNDED')).toEqual([]);
      expect(s.filter((x) => x !== 'NOT_PROJECT_EMPLOYER')).toEqual([]);
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});

describe('the refusal of strangers while an actor is busy', () => {
  it('never turns a repeat of a command applied before into a refusal', async () => {
    const t = await startEngine();
    try {
      const { scopedKey, digest } = await import('../src/ids.js');
      await deposit(t.client, 'emp-rep', '10.00');
      const id = await funded(t.client, 'emp-rep', 'fl-rep', '10.00', 'p-rep');
      // The employer cancels before the award, then the freelancer accepts the award: a new
      // cancel by the employer would now be PERMISSION_DENIED, a repeat of the first is not.
      const k = key();
      await t.client.m('CancelMilestone', 'emp-rep', { milestone_id: id, reason: 'mistake', idempotency_key: k });
      await t.client.m('AcceptAward', 'fl-rep', { project_id: 'p-rep', idempotency_key: key() });
      const actor = t.engine.milestones!.milestones.get(id);
      const employer = { id: 'emp-rep', roles: [] };
      const repeat = {
        key: scopedKey('emp-rep', k),
        digest: digest({ op: 'cancel', milestoneId: id, reason: 'mistake' }),
        event: { type: 'CANCEL', by: employer, at: new Date().toISOString(), reasonCode: '', reason: 'mistake', awardAccepted: true },
      };
      // Busy (a read is running) when the repeat arrives.
      const read = actor.read();
      const answer = await actor.send(repeat).then(
        (s) => s.state,
        (e: { reason?: string }) => e.reason,
      );
      await read;
      expect(answer).toBe('cancelled');
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});
