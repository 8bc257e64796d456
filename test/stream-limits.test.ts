import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runAudit } from '../src/ledger/auditor.js';
import { failure, PAYMENTS, usd } from './helpers/client.js';
import { eventually, useEngine } from './helpers/engine.js';
import { key } from './helpers/flows.js';

const t = useEngine({ env: { ESCROW_STREAM_MAX_BYTES: '40000' } });

describe('the stream is bounded', () => {
  it('at its byte limit new commands are refused with UNAVAILABLE EVENT_LOG_FULL; no event is ever discarded; reads go on', async () => {
    const { jsm, names } = t.engine.log;
    await t.client.a('Deposit', PAYMENTS, { user_id: 'emp-full', amount: usd('1000.00'), external_reference: key() });
    const made: string[] = [];
    let refused: Awaited<ReturnType<typeof failure>> | null = null;
    for (let i = 0; i < 100 && !refused; i++) {
      try {
        const r = await t.client.m('CreateMilestone', 'emp-full', {
          project_id: 'p-full',
          freelancer_id: 'fl-full',
          amount: usd('1.00'),
          description: 'd'.repeat(500),
          idempotency_key: key(),
        });
        made.push(r.milestone.id);
      } catch (err) {
        refused = err as never;
      }
      // The gateway reads the stream's size every second.
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 1_100));
    }
    expect(refused).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: 'EVENT_LOG_FULL' });
    expect(made.length).toBeGreaterThan(3);
    const info = await jsm.streams.info(names.stream);
    expect(info.state.first_seq).toBe(1);
    expect(info.state.messages).toBe(info.state.last_seq);
    // What is there can still be read, and the ledger holds what was accepted.
    for (const id of made)
      expect((await t.client.m('GetMilestone', 'emp-full', { milestone_id: id })).milestone.status).toMatch(/FUNDED|PENDING_FUNDING/);
    await eventually(async () => expect((await runAudit(t.engine.log, t.engine.pool, 5_000)).violations).toEqual([]), 20_000);
  });

  it('a message above the largest event the stream stores is refused by the server', async () => {
    const err = await t.engine.log.js.publish(`${t.engine.log.names.namespace}.milestone.x`, randomBytes(70_000)).then(
      () => null,
      (e: { code?: number }) => e.code,
    );
    expect(err).toBe(10054);
  });
});

describe('tools read the stream in bounded batches', () => {
  it('the auditor reads a 100 MB stream to its end', async () => {
    const { startEngine, dropNamespace } = await import('./helpers/engine.js');
    const quiet = await startEngine({ gateway: false, worker: false });
    try {
      const { js, names } = quiet.engine.log;
      const body = randomBytes(60_000);
      // 1,700 messages of 60 KB: about 100 MB, the largest messages the stream takes.
      for (let i = 0; i < 1_700; i += 50)
        await Promise.all(Array.from({ length: 50 }, (_, j) => js.publish(`${names.namespace}.milestone.big${i + j}`, body)));
      const t0 = Date.now();
      const report = await runAudit(quiet.engine.log, quiet.engine.pool, 0);
      expect(report.streamMessages).toBe(1_700);
      expect(Date.now() - t0).toBeLessThan(60_000);
    } finally {
      await quiet.stop();
      await dropNamespace(quiet.namespace);
    }
  }, 120_000);
});
