import { describe, expect, it } from 'vitest';
import { cloudEvent } from '../src/events/cloudevent.js';
import { WrongLastSequence } from '../src/events/log.js';
import { useEngine } from './helpers/engine.js';

const t = useEngine({ worker: false });

describe('the event log after a reconnect', () => {
  it('a safety check that cannot reach the server counts as unsafe, not safe: nothing is appended until it answers', async () => {
    const log = t.engine.log;
    const streams = log.jsm.streams as { info: (...a: unknown[]) => Promise<unknown> };
    const info = streams.info.bind(streams);
    const event = (id: string) =>
      cloudEvent({
        id,
        source: log.names.source,
        type: 'escrow.test.probe.v1',
        subject: 'probe',
        time: new Date().toISOString(),
        data: {},
      });
    streams.info = () => Promise.reject(new Error('the server did not answer'));
    try {
      // What a reconnect does: check the server again before trusting it.
      void log.recheck({ duplicateWindowMs: 120_000, signingSecret: 'x' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(log.available).toBe(false);
      await expect(log.append(`${log.names.namespace}.probe.a`, event('00000000-0000-8000-8000-00000000000a'), null)).rejects.toMatchObject(
        { reason: 'EVENT_LOG_UNSAFE' },
      );
    } finally {
      streams.info = info;
    }
    // Tried again until it answers: then appends go in.
    for (let i = 0; i < 40 && !log.available; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.available).toBe(true);
    await expect(log.append(`${log.names.namespace}.probe.b`, event('00000000-0000-8000-8000-00000000000b'), null)).resolves.toMatchObject({
      duplicate: false,
    });
  });
});

describe('the event log when the server answers "duplicate" without storing', () => {
  it('a "duplicate" at sequence 0 is not taken for one: the append goes in under a fresh msgID, and a copy is still refused by the expected sequence', async () => {
    // A clustered nats-server before 2.10.25 answers a retry of a refused append this way for
    // the whole duplicate window (nats-server#6415): test/cluster reproduces it on 2.10.14.
    const log = t.engine.log;
    const js = log.js as unknown as { publish: (subject: unknown, body: unknown, opts: { msgID: string }) => Promise<unknown> };
    const publish = js.publish.bind(js);
    const msgIds: string[] = [];
    js.publish = (subject: unknown, body: unknown, opts: { msgID: string }) => {
      msgIds.push(opts.msgID);
      return msgIds.length === 1 ? Promise.resolve({ stream: log.names.stream, seq: 0, duplicate: true }) : publish(subject, body, opts);
    };
    const subject = `${log.names.namespace}.probe.dup0`;
    const event = cloudEvent({
      id: '00000000-0000-8000-8000-0000000000d0',
      source: log.names.source,
      type: 'escrow.test.probe.v1',
      subject: 'probe',
      time: new Date().toISOString(),
      data: {},
    });
    try {
      const ack = await log.append(subject, event, 0);
      expect(ack).toMatchObject({ duplicate: false });
      expect(ack.seq).toBeGreaterThan(0);
      expect(msgIds).toEqual([event.id, expect.stringMatching(new RegExp(`^${event.id}~[0-9a-f]{12}$`))]);
      // Stored once: the event is the subject's only message, and another append expecting 0 is refused.
      expect((await log.readLast(subject))?.seq).toBe(ack.seq);
      await expect(log.append(subject, { ...event, id: '00000000-0000-8000-8000-0000000000d1' }, 0)).rejects.toBeInstanceOf(
        WrongLastSequence,
      );
    } finally {
      js.publish = publish;
    }
  });
});

describe('a "duplicate at sequence 0" for an append that was stored after all', () => {
  it('is answered from the stored event: no second copy under a fresh msgID', async () => {
    const log = t.engine.log;
    const js = log.js as unknown as { publish: (subject: unknown, body: unknown, opts: { msgID: string }) => Promise<{ seq: number }> };
    const publish = js.publish.bind(js);
    let calls = 0;
    // The first attempt is stored, but its answer says "duplicate at 0" (a copy in flight).
    js.publish = async (subject, body, opts) => {
      calls++;
      const ack = await publish(subject, body, opts);
      return calls === 1 ? { ...ack, seq: 0, duplicate: true } : ack;
    };
    const subject = `${log.names.namespace}.probe.dup0stored`;
    const event = cloudEvent({
      id: '00000000-0000-8000-8000-0000000000d2',
      source: log.names.source,
      type: 'escrow.test.probe.v1',
      subject: 'probe',
      time: new Date().toISOString(),
      data: {},
    });
    try {
      const ack = await log.append(subject, event, 0);
      expect(ack.duplicate).toBe(true);
      expect(ack.seq).toBe((await log.readLast(subject))?.seq);
      expect(calls).toBe(1);
    } finally {
      js.publish = publish;
    }
  });
});
