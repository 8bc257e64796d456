import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkHistory, parseHistory, type CallRecord } from '../load/history.js';
import { runRace, type RaceResult } from '../load/race.js';
import { cloudEvent } from '../src/events/cloudevent.js';
import type { EntityEventData } from '../src/runtime/entity.js';
import { useEngine } from './helpers/engine.js';
import { key } from './helpers/flows.js';
import { eventId, scopedKey } from '../src/ids.js';

const t = useEngine();

/**
 * The history checker proves what clients were told against the event log, per call. It is
 * trusted only because it fails on planted violations: a history line that claims a win the
 * log does not hold, one that calls refused a command whose event is in the log, and a
 * second ending event forged into the log.
 */
describe('the history checker', () => {
  let race: RaceResult;

  it('proves a fair race with duplicates: every answer agrees with the log', async () => {
    race = await runRace({
      clients: [t.client],
      milestones: 12,
      contenders: 8,
      duplicates: 2,
      disputeShare: 0.25,
      extraShare: 0.4,
      amount: '10.00',
      prefix: key('hist'),
      concurrency: 96,
    });
    expect(race.calls).toHaveLength(12 * 8 * 2);
    // Partial releases and cancellation requests and rejections raced the ending commands.
    expect(new Set(race.calls.map((c) => c.rpc))).toEqual(
      new Set(['ReleaseMilestone', 'CancelMilestone', 'AcceptSettlement', 'RequestCancellation', 'RejectCancellation']),
    );
    const verdict = await checkHistory(t.engine.log, race.calls);
    expect(verdict).toMatchObject({ milestones: 12, calls: 192, problems: [], unansweredEndings: 0 });
    // The lines survive being written and read back.
    const text = race.calls.map((c) => JSON.stringify(c)).join('\n');
    expect(parseHistory(text)).toEqual(race.calls);
    // So do the race_calls samples of k6's JSON output (load/k6/race.js), among k6's other lines.
    const c = race.calls.find((x) => x.code === 'OK')!;
    const k6 = [
      JSON.stringify({ type: 'Metric', metric: 'race_calls', data: { type: 'counter' } }),
      JSON.stringify({ type: 'Point', metric: 'grpc_req_duration', data: { time: new Date(c.t).toISOString(), value: 3, tags: {} } }),
      JSON.stringify({
        type: 'Point',
        metric: 'race_calls',
        data: {
          time: new Date(c.t).toISOString(),
          value: 1,
          tags: { milestone: c.milestoneId, caller: c.caller, rpc: c.rpc, key: c.key, code: c.code, status: c.status, reason: '' },
        },
      }),
    ].join('\n');
    expect(parseHistory(k6)).toEqual([
      { t: c.t, caller: c.caller, rpc: c.rpc, milestoneId: c.milestoneId, key: c.key, code: 'OK', status: c.status },
    ]);
    expect((await checkHistory(t.engine.log, parseHistory(k6))).problems).toEqual([]);
  });

  it('fails on a line that claims a win the log does not hold', async () => {
    const lost = race.calls.find((c) => c.code === 'FAILED_PRECONDITION' && c.rpc === 'CancelMilestone')!;
    const forged: CallRecord = { ...lost, code: 'OK', status: 'CANCELLED' };
    const verdict = await checkHistory(t.engine.log, [forged]);
    expect(verdict.problems.join('\n')).toMatch(/was told its \w+ \(key .*\) succeeded, and the log has no event of it/);
  });

  it('fails on a line that calls refused a command the log holds', async () => {
    const won = race.calls.find(
      (c) =>
        c.code === 'OK' &&
        c.rpc !== 'RequestCancellation' &&
        c.rpc !== 'RejectCancellation' &&
        !(c.rpc === 'ReleaseMilestone' && c.key.includes('partial')),
    )!;
    const verdict = await checkHistory(t.engine.log, [{ ...won, code: 'FAILED_PRECONDITION', reason: 'ILLEGAL_IN_STATUS' }]);
    expect(verdict.problems.join('\n')).toMatch(
      /was refused \(FAILED_PRECONDITION ILLEGAL_IN_STATUS\), and the log holds its (released|cancelled|resolved) event/,
    );
  });

  it('lets a copy refused at an earlier version take effect later, and fails on a refusal at or after its own event or from a view the log had passed', async () => {
    // Every refusal for the state names the version it was decided at.
    const refusals = race.calls.filter((c) => c.code === 'FAILED_PRECONDITION');
    expect(refusals.length).toBeGreaterThan(0);
    for (const r of refusals) expect(r.version, JSON.stringify(r)).toEqual(expect.any(Number));
    const won = race.calls.find((c) => c.code === 'OK' && c.rpc === 'RejectCancellation') ?? race.calls.find((c) => c.code === 'OK')!;
    const own = eventId('milestone', won.milestoneId, scopedKey(won.caller, won.key));
    let event: { version: number; storedAt: number } | undefined;
    for await (const e of t.engine.log.readSubject<EntityEventData<object>>(
      t.engine.log.names.milestone(won.milestoneId),
      0,
      Number.MAX_SAFE_INTEGER,
      true,
    )) {
      if (e.event.id === own) event = { version: e.event.data.version, storedAt: e.storedAt! };
    }
    const refused = { ...won, code: 'FAILED_PRECONDITION', reason: 'ILLEGAL_IN_STATUS', status: undefined };
    // A copy sent before its twin's event was stored, refused at the version before it: an honest answer.
    const copy = { ...refused, version: event!.version - 1, sent: event!.storedAt - 1_000 };
    expect((await checkHistory(t.engine.log, [copy])).problems).toEqual([]);
    // Refused at the version of its own event (the key was applied in the state it was decided from).
    const atOwn = await checkHistory(t.engine.log, [{ ...copy, version: event!.version }]);
    expect(atOwn.problems.join('\n')).toMatch(
      new RegExp(`and the log holds its \\w+ event at version ${event!.version}, though refused at version ${event!.version}`),
    );
    // Refused at the version before, but sent a second after the next version was stored: decided from a stale view.
    const stale = await checkHistory(t.engine.log, [{ ...copy, sent: event!.storedAt + 1_000 }]);
    expect(stale.problems.join('\n')).toMatch(
      new RegExp(
        `was refused at version ${event!.version - 1}, and the log held version ${event!.version} \\d+ ms before the call was sent`,
      ),
    );
  });

  it('fails on a line that says a milestone ended the log does not end that way', async () => {
    // Any winner will do (in 12 milestones a cancel may win none): told the other ending.
    const ended: Record<string, string> = { RELEASED: 'released', CANCELLED: 'cancelled', RESOLVED: 'resolved' };
    const won = race.calls.find((c) => c.code === 'OK' && c.status !== undefined && c.status in ended)!;
    const told = won.status === 'RELEASED' ? 'CANCELLED' : 'RELEASED';
    const verdict = await checkHistory(t.engine.log, [{ ...won, status: told }]);
    expect(verdict.problems.join('\n')).toMatch(
      new RegExp(`that it is ${told} at version \\d+, and the log's ending is ${ended[won.status!]} at version \\d+`),
    );
  });

  it('fails on a second ending event forged into the log (signed, as a broken gateway would append it)', async () => {
    const log = t.engine.log;
    const won = race.calls.find((c) => c.code === 'OK' && c.status === 'RELEASED' && c.key.includes('-release-'))!;
    const subject = log.names.milestone(won.milestoneId);
    const last = (await log.readLast<EntityEventData<object>>(subject))!;
    const data = last.event.data;
    await log.append(
      subject,
      cloudEvent({
        id: randomUUID(),
        source: log.names.source,
        type: 'escrow.milestone.cancelled.v1',
        subject: won.milestoneId,
        time: new Date().toISOString(),
        data: { ...data, version: data.version + 1, key: 'forged', change: { amount: '0.00', reasonCode: '', reason: 'forged' } },
      }),
      last.seq,
    );
    const verdict = await checkHistory(
      log,
      race.calls.filter((c) => c.milestoneId === won.milestoneId),
    );
    expect(verdict.problems.join('\n')).toMatch(/2 ending events in the log \(released, cancelled\)/);
  });
});
