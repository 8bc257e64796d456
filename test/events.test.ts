import { AckPolicy, DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { decode, type CloudEvent } from '../src/events/cloudevent.js';
import { usd } from './helpers/client.js';
import { useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';

const t = useEngine();

describe('events for consumers', () => {
  it('a consumer on <ns>.milestone.> sees each milestone in order, each event id once after deduplication', async () => {
    const c = t.client;
    await deposit(c, 'emp', '100.00');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await funded(c, 'emp', 'fl', '10.00', 'proj');
      ids.push(id);
      const k = key();
      // Retries of the same command must not produce a second event.
      await Promise.all([1, 2, 3].map(() => c.m('ReleaseMilestone', 'emp', { milestone_id: id, amount: usd('4.00'), idempotency_key: k })));
      if (i % 2) await c.m('ReleaseMilestone', 'emp', { milestone_id: id, idempotency_key: key() });
      else await c.m('CancelMilestone', 'emp', { milestone_id: id, reason: 'no longer needed', idempotency_key: key() });
    }

    const { jsm, names } = t.engine.log;
    const durable = `${t.namespace}_consumer_test`;
    // A short ack wait, and the first delivery never acknowledged: the consumer sees redeliveries.
    await jsm.consumers.add(names.stream, {
      durable_name: durable,
      filter_subject: `${t.namespace}.milestone.>`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 1_000_000_000,
    });
    const consumer = await jetstream(t.engine.nc).consumers.get(names.stream, durable);
    const seen = new Map<string, CloudEvent>();
    let deliveries = 0;
    const until = Date.now() + 15_000;
    while (Date.now() < until && (deliveries < 15 || seen.size < 15 || deliveries === seen.size)) {
      const batch = await consumer.fetch({ max_messages: 100, expires: 1_500 });
      for await (const m of batch) {
        deliveries++;
        const e = decode(m.data);
        expect(m.subject).toBe(`${t.namespace}.milestone.${e.subject}`);
        if (m.info.deliveryCount > 1) m.ack();
        if (!seen.has(e.id)) seen.set(e.id, e);
      }
    }
    expect(deliveries).toBeGreaterThan(seen.size);

    const events = [...seen.values()];
    for (const e of events) {
      expect(e).toMatchObject({ specversion: '1.0', source: `urn:escrow:${t.namespace}`, datacontenttype: 'application/json' });
      expect(e.type).toMatch(/^escrow\.milestone\.[a-z_]+\.v1$/);
      expect(Number.isFinite(Date.parse(e.time))).toBe(true);
    }
    for (const [i, id] of ids.entries()) {
      const mine = events.filter((e) => e.subject === id);
      const versions = mine.map((e) => (e.data as { version: number }).version);
      expect(versions).toEqual([1, 2, 3]);
      expect(mine.map((e) => e.type)).toEqual([
        'escrow.milestone.created.v1',
        'escrow.milestone.partially_released.v1',
        i % 2 ? 'escrow.milestone.released.v1' : 'escrow.milestone.cancelled.v1',
      ]);
      const last = mine[2]!.data as { state: { context: { held: string; released: string; returned: string } } };
      expect(last.state.context.held).toBe('0.00');
    }
    await jsm.consumers.delete(names.stream, durable);
  });

  it('WatchMilestone streams the current state and each change until a final status', async () => {
    const c = t.client;
    await deposit(c, 'emp-w', '10.00');
    const id = await funded(c, 'emp-w', 'fl-w', '10.00', 'proj-w');
    const stream = c.stream('WatchMilestone', await c.token('fl-w'), { milestone_id: id });
    const statuses: string[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: { milestone: { status: string } }) => statuses.push(r.milestone.status));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 300));
    await c.m('RequestRelease', 'fl-w', { milestone_id: id, idempotency_key: key() });
    await c.m('ReleaseMilestone', 'emp-w', { milestone_id: id, idempotency_key: key() });
    await ended;
    expect(statuses).toEqual(['FUNDED', 'RELEASE_REQUESTED', 'RELEASED']);
  });
});
