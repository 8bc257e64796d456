/**
 * A minimal event consumer: follows every milestone event of a deployment with a durable
 * JetStream consumer of its own, and deduplicates by the CloudEvents id (delivery is at
 * least once). Run: `npm run consume` (the `npm start` engine of this folder, from its
 * .data/endpoints.json), or NATS_URL=nats://... ESCROW_NAMESPACE=... npm run consume.
 */
import { connect } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { MilestoneEmitted } from '../actors/events.js';
import { natsOptions, toolConfig } from '../src/config.js';
import { parseEventType, validateChange } from '../src/events/schemas.js';

const config = await toolConfig();
if (!config.natsUrl) {
  console.error('no NATS_URL, and no engine of `npm start` runs on this data folder');
  process.exit(64);
}
const namespace = config.namespace;
const nc = await connect(natsOptions(config.natsUrl, config.natsAuth));
const jsm = await jetstreamManager(nc);
const stream = namespace.toUpperCase();
const durable = process.env.CONSUMER_NAME ?? 'example_consumer';
await jsm.consumers.add(stream, {
  durable_name: durable,
  filter_subject: `${namespace}.milestone.>`,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
});
const consumer = await jetstream(nc).consumers.get(stream, durable);

// A real consumer keeps the ids it processed in its own store, in the same transaction as
// its side effects; a bounded in-memory set is enough for a demonstration.
const seen = new Set<string>();
// Pulled by size (events are at most the stream's largest message, 64 KiB by default).
const messages = await consumer.consume({ max_bytes: 4 * 1024 * 1024 });
for await (const m of messages) {
  const event = m.json<{
    id: string;
    type: string;
    subject: string;
    data: { version: number; change: MilestoneEmitted['data']; state: { state: string } };
  }>();
  // Each type's change has a schema (npm run schemas); a consumer can check what it reads.
  const parsed = parseEventType(event.type);
  const wrong = parsed ? validateChange(parsed.entity, parsed.type, event.data.change) : 'unknown type';
  if (wrong) console.error(`skipping ${event.id}: ${wrong}`);
  else if (!seen.has(event.id)) {
    seen.add(event.id);
    if (seen.size > 100_000) seen.delete(seen.values().next().value!);
    console.log(`${event.type} milestone=${event.subject} version=${event.data.version} state=${event.data.state.state}`);
  }
  m.ack();
}
