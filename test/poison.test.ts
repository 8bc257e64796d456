import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { headers } from '@nats-io/transport-node';
import { protoPath } from 'grpc-health-check';
import { LEDGER_HEALTH } from '../src/gateway/server.js';
import { registry } from '../src/metrics.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encode } from '../src/events/cloudevent.js';
import { SIGNATURE_HEADER } from '../src/events/signing.js';
import { runAudit } from '../src/ledger/auditor.js';
import { dropQuarantined, listQuarantine, replayQuarantined } from '../src/ledger/quarantine.js';
import { failure } from './helpers/client.js';
import { eventually, useEngine } from './helpers/engine.js';
import { balance, deposit, funded, key } from './helpers/flows.js';
import { ledgerCaughtUp } from './helpers/ledger.js';
import type { Reply } from '../src/client.js';

const t = useEngine();

async function ledgerHealth(): Promise<string> {
  const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as Reply;
  const client = new def.grpc.health.v1.Health(t.config.grpcAddress, grpc.credentials.createInsecure());
  try {
    return (
      await new Promise<Reply>((resolve, reject) =>
        client.Check({ service: LEDGER_HEALTH }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))),
      )
    ).status;
  } finally {
    client.close();
  }
}

/** Publishes a message on the stream as anything with NATS access could: unsigned, or signed with the deployment's key (an engine bug). */
async function publish(subject: string, body: Uint8Array, o: { signed?: boolean } = {}): Promise<number> {
  const h = headers();
  if (o.signed) h.set(SIGNATURE_HEADER, t.engine.log.signer.sign(subject, body));
  return (await t.engine.log.js.publish(subject, body, { headers: h })).seq;
}

function event(type: string, subject: string, data: object, source = t.engine.log.names.source) {
  return encode({
    specversion: '1.0',
    id: randomUUID(),
    source,
    type,
    subject,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data,
  } as never);
}

const releaseOfNobody = (id: string) => ({
  by: 'emp',
  version: 3,
  change: { amount: '10.00', held: '0.00', fee: '0.00' },
  state: {
    id,
    state: 'released',
    version: 3,
    applied: {},
    history: [],
    context: {
      employerId: 'emp',
      freelancerId: 'mallory',
      currency: 'USD',
      amount: '10.00',
      held: '0.00',
      released: '10.00',
      returned: '0.00',
      projectId: 'p',
      description: '',
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    },
  },
});

async function quarantined(seq: number) {
  return eventually(async () => {
    const row = (await listQuarantine(t.engine.pool, { all: true })).find((q) => Number(q.stream_seq) === seq);
    expect(row).toBeDefined();
    return row!;
  }, 10_000);
}

describe('poison messages are moved aside and the ledger goes on', () => {
  it('a forged deposit is never credited', async () => {
    const ns = t.engine.log.names;
    const seq = await publish(
      ns.account('mallory'),
      event('escrow.account.deposit_requested.v1', 'mallory', {
        userId: 'mallory',
        currency: 'USD',
        amount: '1000.00',
        externalReference: key(),
      }),
    );
    expect(await quarantined(seq)).toMatchObject({ reason: 'UNSIGNED', signed: false, event_type: 'escrow.account.deposit_requested.v1' });
    // Counted for the operators (the in-process worker's registry; a process serves it on METRICS_ADDRESS).
    expect(await registry.metrics()).toMatch(/escrow_ledger_quarantined_total\{reason="UNSIGNED"\} [1-9]/);
    // The ledger goes on: a real deposit after it is applied, the forged one never.
    await deposit(t.client, 'mallory', '1.00');
    expect(await balance(t.client, 'mallory')).toEqual({ available: '1.00', held: '0.00', incoming: '0.00' });
    const fail = await failure(
      t.client.a('Withdraw', 'mallory', { amount: { currency_code: 'USD', amount: '5.00' }, external_reference: key() }),
    );
    expect(fail.reason).toBe('INSUFFICIENT_FUNDS');
  });

  it('a forged release for an unknown milestone, garbage bytes, a foreign source: each set aside, with its reason', async () => {
    const ns = t.engine.log.names;
    const id = randomUUID();
    const forged = await publish(ns.milestone(id), event('escrow.milestone.released.v1', id, releaseOfNobody(id)));
    const garbage = await publish(ns.milestone(randomUUID()), randomBytes(200));
    const garbageSigned = await publish(ns.account('x'), randomBytes(50), { signed: true });
    const foreign = await publish(
      ns.account('x'),
      event(
        'escrow.account.deposit_requested.v1',
        'x',
        { userId: 'x', currency: 'USD', amount: '5.00', externalReference: key() },
        'urn:somebody:else',
      ),
      { signed: true },
    );
    expect(await quarantined(forged)).toMatchObject({ reason: 'UNSIGNED' });
    expect(await quarantined(garbage)).toMatchObject({ reason: 'UNSIGNED' });
    expect(await quarantined(garbageSigned)).toMatchObject({ reason: 'NOT_A_CLOUDEVENT', signed: true });
    expect(await quarantined(foreign)).toMatchObject({ reason: 'FOREIGN_SOURCE', signed: true });
    // The forged milestone is no state a gateway will load.
    const got = await failure(t.client.m('GetMilestone', 'emp', { milestone_id: id }));
    expect(got).toMatchObject({ code: grpc.status.INTERNAL, reason: 'EVENT_UNVERIFIED' });
    // Money still moves.
    await deposit(t.client, 'emp-after', '10.00');
    const m = await funded(t.client, 'emp-after', 'fl-after', '10.00', 'p-after');
    expect((await t.client.m('ReleaseMilestone', 'emp-after', { milestone_id: m, idempotency_key: key() })).milestone.status).toBe(
      'RELEASED',
    );
    await ledgerCaughtUp(t.engine);
  });

  it("an event of the engine's own that cannot be applied is quarantined, the auditor names it until a person resolves it", async () => {
    const ns = t.engine.log.names;
    const id = randomUUID();
    // Signed: as if the engine itself had a bug. Paying from an escrow that holds nothing would break an invariant.
    const seq = await publish(ns.milestone(id), event('escrow.milestone.released.v1', id, releaseOfNobody(id)), { signed: true });
    const row = await quarantined(seq);
    expect(row).toMatchObject({ reason: 'CANNOT_APPLY', signed: true });
    expect(row.detail).toMatch(/below zero/);
    await deposit(t.client, 'emp-go-on', '3.00');
    expect((await balance(t.client, 'emp-go-on')).available).toBe('3.00');
    await ledgerCaughtUp(t.engine);

    const before = await runAudit(t.engine.log, t.engine.pool);
    // Every open signed entry is named (also the signed garbage and foreign-source messages above), nothing else.
    expect(new Set(before.violations.map((v) => v.check))).toEqual(new Set(['quarantined']));
    expect(before.violations.filter((v) => v.detail.includes(`stream seq ${seq}: CANNOT_APPLY`))).toHaveLength(1);
    expect(before.forgeriesQuarantined).toBeGreaterThan(0);
    // Replaying it fails the same way and leaves it open; dropping it resolves it once.
    await expect(replayQuarantined(t.engine.pool, t.engine.log, seq, 'try')).rejects.toThrow(/below zero/);
    expect(await replayQuarantined(t.engine.pool, t.engine.log, 1_000_000_000, 'none')).toBe('not_found');
    expect(await dropQuarantined(t.engine.pool, seq, 'a bug, investigated')).toBe(true);
    expect(await dropQuarantined(t.engine.pool, seq, 'twice')).toBe(false);
    for (const q of await listQuarantine(t.engine.pool))
      if (q.signed) await dropQuarantined(t.engine.pool, Number(q.stream_seq), 'test messages');
    const after = await runAudit(t.engine.log, t.engine.pool);
    expect(after.violations).toEqual([]);
    // Forgeries are never replayed as money.
    const forged = (await listQuarantine(t.engine.pool)).find((q) => !q.signed)!;
    expect(await replayQuarantined(t.engine.pool, t.engine.log, Number(forged.stream_seq), 'no')).toBe('unsigned');
    // The ledger's health entry says whether anything waits in the quarantine.
    await eventually(async () => expect(await ledgerHealth()).toBe('NOT_SERVING'), 5_000);
    for (const q of await listQuarantine(t.engine.pool)) await dropQuarantined(t.engine.pool, Number(q.stream_seq), 'forgeries, reported');
    await eventually(async () => expect(await ledgerHealth()).toBe('SERVING'), 10_000);
  });
});
