import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EscrowClient, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, startEngine, type TestEngine } from './helpers/engine.js';
import { deposit, expectBalance, funded, key } from './helpers/flows.js';

let worker: TestEngine;
beforeAll(async () => {
  worker = await startEngine({ gateway: false });
});
afterAll(async () => {
  await worker.stop();
  await dropNamespace(worker.namespace);
});

describe('gateway restart', () => {
  it('actors come back from the stream with the right state and version', async () => {
    const first = await startEngine({ namespace: worker.namespace, worker: false });
    const c = first.client;
    await deposit(c, 'emp', '100.00');
    const fundedId = await funded(c, 'emp', 'fl', '10.00', 'proj');
    const partial = await funded(c, 'emp', 'fl', '10.00', 'proj');
    await c.m('ReleaseMilestone', 'emp', { milestone_id: partial, amount: usd('3.00'), idempotency_key: key() });
    const requested = await funded(c, 'emp', 'fl', '10.00', 'proj');
    await c.m('RequestRelease', 'fl', { milestone_id: requested, idempotency_key: key() });
    const released = await funded(c, 'emp', 'fl', '10.00', 'proj');
    const releaseKey = key();
    const releasedAnswer = await c.m('ReleaseMilestone', 'emp', { milestone_id: released, idempotency_key: releaseKey });
    const before = await Promise.all(
      [fundedId, partial, requested, released].map((id) => c.m('GetMilestone', 'emp', { milestone_id: id })),
    );
    await first.stop();

    // A gateway killed without shutdown, then a fresh one.
    const killed = await EngineProcess.start('gateway', worker.namespace);
    const kc = new EscrowClient(killed.address);
    await kc.m('GetMilestone', 'emp', { milestone_id: fundedId });
    kc.close();
    await killed.kill();

    const second = await startEngine({ namespace: worker.namespace, worker: false });
    try {
      const c2 = second.client;
      const after = await Promise.all(
        [fundedId, partial, requested, released].map((id) => c2.m('GetMilestone', 'emp', { milestone_id: id })),
      );
      expect(after.map((a) => a.milestone)).toEqual(before.map((b) => b.milestone));
      expect(after.map((a) => [a.milestone.status, a.milestone.version])).toEqual([
        ['FUNDED', 1],
        ['FUNDED', 2],
        ['RELEASE_REQUESTED', 2],
        ['RELEASED', 2],
      ]);
      // A retry of a command applied before the restart gets the first answer, with no new effect.
      const replay = await c2.m('ReleaseMilestone', 'emp', { milestone_id: released, idempotency_key: releaseKey });
      expect(replay.milestone).toEqual(releasedAnswer.milestone);
      // And the restored actors carry on from their version.
      const next = await c2.m('ReleaseMilestone', 'emp', { milestone_id: partial, idempotency_key: key() });
      expect(next.milestone).toMatchObject({ status: 'RELEASED', version: 3, released: usd('10.00') });
      await expectBalance(c2, 'fl', { available: '20.00', held: '0.00', incoming: '20.00' });
    } finally {
      await second.stop();
    }
  });
});

describe('NATS_URL with several servers', () => {
  it('reaches the cluster through any of them: one down, the engine still starts and works', async () => {
    const { freePort } = await import('../src/dev/embedded.js');
    const { services } = await import('./helpers/engine.js');
    const dead = `nats://127.0.0.1:${await freePort()}`;
    // The live one first: a client given the list as one string used only the last.
    const t = await startEngine({ env: { NATS_URL: `${services().natsUrl},${dead}` } });
    try {
      await deposit(t.client, 'emp-seeds', '3.00');
      await expectBalance(t.client, 'emp-seeds', { available: '3.00', held: '0.00', incoming: '0.00' });
    } finally {
      await t.stop();
      await dropNamespace(t.namespace);
    }
  });
});
