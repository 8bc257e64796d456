import { describe, expect, it } from 'vitest';
import { startEngine, useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';
import { applyBatch } from '../src/ledger/apply.js';
import { allEvents, ledgerCaughtUp } from './helpers/ledger.js';

const t = useEngine({ env: { ESCROW_FEES: JSON.stringify({ USD: { employer: { percent: '2', minimum: '0.50' } } }) } });

/** Bytes of every message on a milestone's subject. */
async function sizes(id: string): Promise<number[]> {
  const out: number[] = [];
  for await (const m of t.engine.log.readSubject(t.engine.log.names.milestone(id), 0, Number.MAX_SAFE_INTEGER))
    out.push(Buffer.byteLength(JSON.stringify(m.event)));
  return out;
}

describe('events stay small however long the history grows', () => {
  it('a typical milestone: the first event carries the terms and what is set at creation, the later ones at most 600 bytes', async () => {
    await deposit(t.client, 'emp-size', '100.00');
    const id = await funded(t.client, 'emp-size', 'fl-size', '10.00', 'p-size');
    await t.client.m('RequestRelease', 'fl-size', { milestone_id: id, idempotency_key: key() });
    await t.client.m('ReleaseMilestone', 'emp-size', { milestone_id: id, idempotency_key: key() });
    const s = await sizes(id);
    console.log(`EVENT_SIZES typical ${JSON.stringify(s)}`);
    // Created (funded from the employer's reservation), release requested, released.
    expect(s).toHaveLength(3);
    expect(s[0]!).toBeLessThan(1_200);
    expect(Math.max(s[1]!, s[2]!)).toBeLessThanOrEqual(600);
    const contexts: Record<string, unknown>[] = [];
    for await (const m of t.engine.log.readSubject<{ state: { context: Record<string, unknown> } }>(
      t.engine.log.names.milestone(id),
      0,
      Number.MAX_SAFE_INTEGER,
    ))
      contexts.push(m.event.data.state.context);
    // What is set at creation is in the first event only; the parties and the currency in every one.
    for (const field of ['terms', 'description', 'projectId', 'amount', 'employerFee', 'reservationId', 'createdAt'])
      expect(contexts.map((c) => field in c)).toEqual([true, false, false]);
    for (const field of ['employerId', 'freelancerId', 'currency', 'held'])
      expect(contexts.map((c) => field in c)).toEqual([true, true, true]);
    // Fields at their initial value, and the change time (the event's time), are left out.
    expect(contexts[2]).not.toHaveProperty('dispute');
    expect(contexts[2]).not.toHaveProperty('updatedAt');
    // A gateway that never saw the milestone loads it whole from those events.
    const other = await startEngine({ namespace: t.namespace, worker: false });
    try {
      const a = (await t.client.m('GetMilestone', 'emp-size', { milestone_id: id })).milestone;
      const b = (await other.client.m('GetMilestone', 'emp-size', { milestone_id: id })).milestone;
      expect(b).toEqual(a);
      expect(b).toMatchObject({
        description: 'work',
        project_id: 'p-size',
        amount: { amount: '10.00' },
        employer_fee: { amount: '0.50' },
        status: 'RELEASED',
        version: 3,
      });
    } finally {
      await other.stop();
    }
  });

  it('the read model keeps what only the first event carries, whether the events come in one batch or one by one', async () => {
    await deposit(t.client, 'emp-rm', '100.00');
    const id = await funded(t.client, 'emp-rm', 'fl-rm', '10.00', 'p-rm');
    await t.client.m('ReleaseMilestone', 'emp-rm', {
      milestone_id: id,
      amount: { currency_code: 'USD', amount: '4.00' },
      idempotency_key: key(),
    });
    await ledgerCaughtUp(t.engine);
    const row = async () =>
      (
        await t.db.query(
          'SELECT project_id, employer_id, freelancer_id, currency, amount::text, held::text, released::text, description, employer_fee::text, created_at, version FROM milestones WHERE milestone_id = $1',
          [id],
        )
      ).rows[0];
    const applied = await row();
    expect(applied).toMatchObject({
      project_id: 'p-rm',
      amount: '10.00',
      held: '6.00',
      released: '4.00',
      description: 'work',
      employer_fee: '0.50',
      version: 2,
    });
    const events = (await allEvents(t)).filter((e) => e.event.subject === id);
    expect(events).toHaveLength(2);
    const client = await t.engine.pool.connect();
    try {
      // The milestone's events again on a read model without it: in one batch, then each in its own.
      await client.query('DELETE FROM milestones WHERE milestone_id = $1', [id]);
      await applyBatch(client, events);
      expect(await row()).toEqual(applied);
      await client.query('DELETE FROM milestones WHERE milestone_id = $1', [id]);
      for (const e of events) await applyBatch(client, [e]);
      expect(await row()).toEqual(applied);
      // The later event alone changes what changes, and keeps what was set at creation.
      await client.query("UPDATE milestones SET version = 1, held = '10.00', released = '0.00' WHERE milestone_id = $1", [id]);
      await applyBatch(client, [events[1]!]);
      expect(await row()).toEqual(applied);
    } finally {
      client.release();
    }
  });

  it('99 cancellation requests with 2000-character reasons and their rejections: under 1 MB in all, the last event about the size of the third; money can still be returned', async () => {
    await deposit(t.client, 'emp-big', '1.00');
    const id = await funded(t.client, 'emp-big', 'fl-big', '0.01', 'p-big');
    let refused: string | null = null;
    for (let i = 0; i < 99 && !refused; i++) {
      refused = await t.client
        .m('RequestCancellation', 'emp-big', { milestone_id: id, reason_code: 'OTHER', reason: 'x'.repeat(2_000), idempotency_key: key() })
        .then(
          () => null,
          (e: { reason: string }) => e.reason,
        );
      if (!refused) {
        refused = await t.client.m('RejectCancellation', 'fl-big', { milestone_id: id, idempotency_key: key() }).then(
          () => null,
          (e: { reason: string }) => e.reason,
        );
      }
    }
    const s = await sizes(id);
    const total = s.reduce((a, b) => a + b, 0);
    console.log(
      `EVENT_SIZES reproduction events=${s.length} total=${total} first=${s[0]} last=${s.at(-1)} max=${Math.max(...s)} refused=${refused}`,
    );
    expect(total).toBeLessThan(1_000_000);
    expect(s.at(-1)!).toBeLessThan(s[2]! + 2_500);
    // The history is still whole for the parties, and the money can always be returned.
    const got = await t.client.m('GetMilestone', 'emp-big', { milestone_id: id });
    expect(got.milestone.history).toHaveLength(s.length);
    const cancelled = await t.client.m('CancelMilestone', 'fl-big', {
      milestone_id: id,
      reason: 'x'.repeat(2_000),
      idempotency_key: key(),
    });
    expect(cancelled.milestone.status).toBe('CANCELLED');
  });

  it('long texts in three-byte characters cannot grow a milestone past the byte bound: refused with EVENT_BYTES_LIMIT, a release still goes through', async () => {
    await deposit(t.client, 'emp-cjk', '1.00');
    const wide = '中'.repeat(2_000);
    const r = await t.client.m('CreateMilestone', 'emp-cjk', {
      project_id: 'p-cjk',
      freelancer_id: 'fl-cjk',
      amount: { currency_code: 'USD', amount: '0.01' },
      description: wide,
      idempotency_key: key(),
    });
    const id = r.milestone.id;
    let refused: { code: number; reason: string } | null = null;
    for (let i = 0; i < 99 && !refused; i++) {
      refused = await t.client
        .m('RequestCancellation', 'emp-cjk', { milestone_id: id, reason_code: 'OTHER', reason: wide, idempotency_key: key() })
        .then(
          () => null,
          (e: { code: number; reason: string }) => e,
        );
      if (!refused) {
        refused = await t.client.m('RejectCancellation', 'fl-cjk', { milestone_id: id, idempotency_key: key() }).then(
          () => null,
          (e: { code: number; reason: string }) => e,
        );
      }
    }
    expect(refused).toMatchObject({ code: 9, reason: 'EVENT_BYTES_LIMIT' });
    const released = await t.client.m('ReleaseMilestone', 'emp-cjk', { milestone_id: id, idempotency_key: key() });
    expect(released.milestone.status).toBe('RELEASED');
    const total = (await sizes(id)).reduce((a, b) => a + b, 0);
    console.log(`EVENT_SIZES wide total=${total}`);
    expect(total).toBeLessThan(1_000_000);
  });
});

describe('events of an earlier version, which carried the whole history', () => {
  it('load with their history and their idempotency keys', async () => {
    const { cloudEvent } = await import('../src/events/cloudevent.js');
    const { scopedKey, digest, milestoneIdFor } = await import('../src/ids.js');
    const { VERSION_HEADER } = await import('../src/events/log.js');
    const log = t.engine.log;
    const id = milestoneIdFor('emp-old', 'old-key');
    const at = new Date().toISOString();
    const context = {
      id,
      projectId: 'p-old',
      employerId: 'emp-old',
      freelancerId: 'fl-old',
      description: '',
      currency: 'USD',
      amount: '10.00',
      held: '10.00',
      released: '0.00',
      returned: '0.00',
      createdAt: at,
      updatedAt: at,
    };
    const releaseKey = scopedKey('emp-old', 'old-release');
    const releaseDigest = digest({ op: 'release', milestoneId: id, money: null });
    // As the earlier version wrote it: the state with `applied` (raw keys) and `history`.
    const state = {
      id,
      state: 'released',
      version: 3,
      context: { ...context, held: '0.00', released: '10.00' },
      applied: {
        [scopedKey('emp-old', 'old-key')]: { digest: 'x', version: 1 },
        ['system:outcome']: { digest: 'y', version: 2 },
        [releaseKey]: { digest: releaseDigest, version: 3 },
      },
      history: [
        { version: 1, type: 'created', by: 'emp-old', at, data: { amount: '10.00' } },
        { version: 2, type: 'funded', by: 'system', at, data: {} },
        { version: 3, type: 'released', by: 'emp-old', at, data: { amount: '10.00' } },
      ],
    };
    const event = cloudEvent({
      id: '00000000-0000-8000-8000-000000000003',
      source: log.names.source,
      type: 'escrow.milestone.released.v1',
      subject: id,
      time: at,
      data: { by: 'emp-old', version: 3, change: { amount: '10.00', held: '0.00', fee: '0.00' }, state },
    });
    await log.append(log.names.milestone(id), event, null, { [VERSION_HEADER]: '3' });
    const got = await t.client.m('GetMilestone', 'emp-old', { milestone_id: id });
    expect(got.milestone.history.map((h: { type: string }) => h.type)).toEqual(['created', 'funded', 'released']);
    // The release's key is still known: a repeat gets the first answer, not a refusal.
    const again = await t.client.m('ReleaseMilestone', 'emp-old', { milestone_id: id, idempotency_key: 'old-release' });
    expect(again.milestone).toMatchObject({ status: 'RELEASED', version: 3 });
  });
});

describe('every event has its type’s shape', () => {
  it('what a lifecycle writes validates against the schemas; a signed change of the wrong shape is set aside, never posted', async () => {
    const { invalidEvents } = await import('./helpers/event-shapes.js');
    const { deposit: dep, funded: fund, key: k } = await import('./helpers/flows.js');
    const { listQuarantine } = await import('../src/ledger/quarantine.js');
    const { eventually } = await import('./helpers/engine.js');
    await dep(t.client, 'emp-shape', '11.00');
    const id = await fund(t.client, 'emp-shape', 'fl-shape', '10.00', 'p-shape');
    await t.client.m('ReleaseMilestone', 'emp-shape', {
      milestone_id: id,
      amount: { currency_code: 'USD', amount: '4.00' },
      idempotency_key: k(),
    });
    const ok = await invalidEvents(t.engine);
    expect(ok.checked).toBeGreaterThan(3);
    expect(ok.problems).toEqual([]);

    // As if the engine had renamed a field of `released`: signed, so the ledger trusts its origin, but it is not posted.
    const got = await t.client.m('GetMilestone', 'emp-shape', { milestone_id: id });
    const { cloudEvent } = await import('../src/events/cloudevent.js');
    const log = t.engine.log;
    const bad = cloudEvent({
      id: '00000000-0000-8000-8000-0000000000aa',
      source: log.names.source,
      type: 'escrow.milestone.released.v1',
      subject: id,
      time: new Date().toISOString(),
      data: {
        by: 'emp-shape',
        version: 4,
        key: 'k',
        digest: 'd',
        change: { amount: '6.00', heldNow: '0.00', fee: '0.00' },
        state: {
          id,
          state: 'released',
          version: 4,
          context: {
            ...got.milestone,
            employerId: 'emp-shape',
            freelancerId: 'fl-shape',
            currency: 'USD',
            amount: '10.00',
            held: '0.00',
            released: '10.00',
            returned: '0.00',
          },
        },
      },
    });
    const { seq } = await log.append(`${log.names.namespace}.milestone.shape-test`, bad, null);
    const row = await eventually(async () => {
      const r = (await listQuarantine(t.engine.pool)).find((q) => Number(q.stream_seq) === seq);
      expect(r).toBeDefined();
      return r!;
    }, 10_000);
    expect(row).toMatchObject({ reason: 'CANNOT_APPLY', signed: true });
    expect(row.detail).toMatch(/wrong shape/);
    expect((await invalidEvents(t.engine)).problems).toEqual([expect.stringContaining(`seq ${seq}`)]);
    // The afterAll check would now fail for this file: drop the planted event from its count.
    const { dropQuarantined } = await import('../src/ledger/quarantine.js');
    await dropQuarantined(t.engine.pool, seq, 'planted');
    await t.engine.log.jsm.streams.deleteMessage(t.engine.log.names.stream, seq);
  });
});
