import type { Engine } from '../../src/engine.js';
import { decode } from '../../src/events/cloudevent.js';
import { CHANGE_SCHEMAS } from '../../actors/events.js';
import { parseEventType, validateChange } from '../../src/events/schemas.js';
import { SIGNATURE_HEADER } from '../../src/events/signing.js';

/**
 * Every event the engine signed on the namespace's stream, checked against the schema of its
 * type (actors/events.ts): run after each file's tests, so every event the integration tests
 * produce is validated. Returns the problems (empty when all are well-shaped) and the count.
 */
export async function invalidEvents(engine: Engine): Promise<{ checked: number; problems: string[] }> {
  const { jsm, js, names } = engine.log;
  const info = await jsm.streams.info(names.stream);
  const problems: string[] = [];
  let checked = 0;
  if (info.state.messages === 0) return { checked, problems };
  const consumer = await js.consumers.get(names.stream);
  const messages = await consumer.consume({ max_bytes: 4 * 1024 * 1024 });
  for await (const m of messages) {
    if (engine.log.verified(m.subject, m.data, m.headers?.get(SIGNATURE_HEADER), m.seq)) {
      try {
        const event = decode(m.data);
        const parsed = parseEventType(event.type);
        // The engine's own events only: a signed message of another source is one the poison tests forge.
        if (parsed && parsed.entity in CHANGE_SCHEMAS && event.source === names.source) {
          checked++;
          const wrong = validateChange(parsed.entity, parsed.type, (event.data as { change?: unknown }).change);
          if (wrong) problems.push(`${event.type} seq ${m.seq}: ${wrong}`);
        }
      } catch {
        // Signed but not a CloudEvent: the poison tests make such messages on purpose.
      }
    }
    // The last sequence may be a deleted message: stop when nothing is left to deliver.
    if (m.seq >= info.state.last_seq || m.info.pending === 0) break;
  }
  await messages.close();
  return { checked, problems };
}
