/**
 * Events on NATS are CloudEvents 1.0 in structured JSON mode (the CloudEvents NATS binding):
 * the whole envelope is the message body. The `id` is also the JetStream msgID, so a
 * consumer deduplicates by it.
 */
export interface CloudEvent<D = Record<string, unknown>> {
  specversion: '1.0';
  id: string;
  source: string;
  /** e.g. escrow.milestone.released.v1 */
  type: string;
  /** The id of the entity the event is about (milestone, project, user). */
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: D;
}

export const CONTENT_TYPE = 'application/cloudevents+json';

export function cloudEvent<D>(fields: { id: string; source: string; type: string; subject: string; time: string; data: D }): CloudEvent<D> {
  return { specversion: '1.0', datacontenttype: 'application/json', ...fields };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encode(event: CloudEvent<unknown>): Uint8Array {
  return encoder.encode(JSON.stringify(event));
}

export function decode<D = Record<string, unknown>>(bytes: Uint8Array): CloudEvent<D> {
  const parsed = JSON.parse(decoder.decode(bytes)) as Partial<CloudEvent<D>> | null;
  if (parsed?.specversion !== '1.0' || typeof parsed.id !== 'string' || typeof parsed.type !== 'string') {
    throw new Error('not a CloudEvents 1.0 structured event');
  }
  return parsed as CloudEvent<D>;
}

/** The CloudEvents type of an entity's event: escrow.<entity>.<short>.v1. */
export function eventType(entity: string, short: string): string {
  return `escrow.${entity}.${short}.v1`;
}
