import { describe, expect, it } from 'vitest';
import { cloudEvent } from '../src/events/cloudevent.js';
import { useEngine } from './helpers/engine.js';

const t = useEngine({ worker: false });

describe('the event log after a reconnect', () => {
  it('a safety check that cannot reach the server counts as unsafe, not safe: nothing is appended until it answers', async () => {
    const log = t.engine.log;
    const streams = log.jsm.streams as { info: (...a: unknown[]) => Promise<unknown> };
    const info = streams.info.bind(streams);
    const event = (id: string) => cloudEvent({ id, source: log.names.source, type: 'escrow.test.probe.v1', subject: 'probe', time: new Date().toISOString(), data: {} });
    streams.info = () => Promise.reject(new Error('the server did not answer'));
    try {
      // What a reconnect does: check the server again before trusting it.
      void log.recheck({ duplicateWindowMs: 120_000, signingSecret: 'x' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(log.available).toBe(false);
      await expect(log.append(`${log.names.namespace}.probe.a`, event('00000000-0000-8000-8000-00000000000a'), null)).rejects.toMatchObject({ reason: 'EVENT_LOG_UNSAFE' });
    } finally {
      streams.info = info;
    }
    // Tried again until it answers: then appends go in.
    for (let i = 0; i < 40 && !log.available; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.available).toBe(true);
    await expect(log.append(`${log.names.namespace}.probe.b`, event('00000000-0000-8000-8000-00000000000b'), null)).resolves.toMatchObject({ duplicate: false });
  });
});
