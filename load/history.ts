import { appendFileSync } from 'node:fs';
import type { EventLog } from '../src/events/log.js';
import { eventId, scopedKey } from '../src/ids.js';
import type { EntityEventData } from '../src/runtime/entity.js';
import { runBounded } from './stats.js';

/**
 * The history of a load run: one record per call a client made and the answer it got, as
 * JSON lines (`--history-out FILE` of the race harness; `npm run check-history` reads them).
 */
export interface CallRecord {
  /** Epoch ms when the answer arrived. */
  t: number;
  /** The caller's user id (the idempotency key's scope). */
  caller: string;
  rpc: string;
  milestoneId: string;
  /** The idempotency key sent. */
  key: string;
  /** OK, or the gRPC status name of the refusal (FAILED_PRECONDITION, UNAVAILABLE, ...). */
  code: string;
  reason?: string | undefined;
  /** OK answers: the milestone's status and version as answered. */
  status?: string | undefined;
  version?: number | undefined;
}

/** Statuses a milestone ends in, with the event type that ends it there. */
const ENDINGS: Record<string, string> = { RELEASED: 'released', CANCELLED: 'cancelled', RESOLVED: 'resolved' };
const ENDING_TYPES = new Set(Object.values(ENDINGS));
/** Answers that say the command was decided against (its event must not be in the log). UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED (retry) and the like say nothing. */
const REFUSALS = new Set(['FAILED_PRECONDITION', 'PERMISSION_DENIED', 'INVALID_ARGUMENT', 'NOT_FOUND']);

export function writeHistory(file: string, records: CallRecord[]): void {
  appendFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
}

/**
 * Reads call records, one JSON object per line: the harness's own lines, or k6's JSON output
 * (`k6 run --out json=FILE load/k6/race.js`), whose race_calls samples carry the same fields
 * as tags; k6's other lines are skipped.
 */
export function parseHistory(text: string): CallRecord[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      const line = JSON.parse(l) as Record<string, unknown>;
      if (line.type === 'Metric' || (line.type === 'Point' && line.metric !== 'race_calls')) return [];
      if (line.type !== 'Point') return [line as unknown as CallRecord];
      const data = line.data as { time: string; tags: Record<string, string> };
      const tag = data.tags;
      const record: CallRecord = { t: Date.parse(data.time), caller: tag.caller ?? '', rpc: tag.rpc ?? '', milestoneId: tag.milestone ?? '', key: tag.key ?? '', code: tag.code ?? '' };
      if (tag.status) record.status = tag.status;
      if (tag.reason) record.reason = tag.reason;
      return [record];
    })
    .map((r, i) => {
      if (typeof r.milestoneId !== 'string' || typeof r.caller !== 'string' || typeof r.key !== 'string' || typeof r.code !== 'string') {
        throw new Error(`history record ${i + 1} is not a call record: ${JSON.stringify(r).slice(0, 200)}`);
      }
      return r;
    });
}

export interface HistoryVerdict {
  milestones: number;
  calls: number;
  /** Milestones whose ending event no client was told about (every answer lost: possible under faults, not a violation). */
  unansweredEndings: number;
  problems: string[];
}

/**
 * Proves a history against the event log, per milestone: at most one ending event; every OK
 * answer has its command's event in the log (the event id is derived from the milestone, the
 * caller and the key, so it names exactly one command); an answer that said the milestone
 * ended has that ending in the log, at or before the version answered; a refused command has
 * no event in the log. The money side
 * is the auditor's (runAudit), which callers run beside it.
 */
export async function checkHistory(log: EventLog, records: CallRecord[]): Promise<HistoryVerdict> {
  const byMilestone = new Map<string, CallRecord[]>();
  for (const r of records) {
    let list = byMilestone.get(r.milestoneId);
    if (!list) byMilestone.set(r.milestoneId, (list = []));
    list.push(r);
  }
  const problems: string[] = [];
  let unansweredEndings = 0;
  await runBounded(
    [...byMilestone].map(([id, calls]) => async () => {
      const events = new Map<string, { type: string; version: number }>();
      const endings: { id: string; type: string; version: number }[] = [];
      for await (const e of log.readSubject<EntityEventData<unknown>>(log.names.milestone(id), 0, Number.MAX_SAFE_INTEGER)) {
        const type = e.event.type.split('.').slice(2, -1).join('.');
        events.set(e.event.id, { type, version: e.event.data.version });
        if (ENDING_TYPES.has(type)) endings.push({ id: e.event.id, type, version: e.event.data.version });
      }
      if (endings.length > 1) problems.push(`${id}: ${endings.length} ending events in the log (${endings.map((x) => x.type).join(', ')})`);
      let endingAnswered = false;
      for (const c of calls) {
        const own = eventId('milestone', id, scopedKey(c.caller, c.key));
        const logged = events.get(own);
        if (c.code === 'OK') {
          if (!logged) problems.push(`${id}: ${c.caller} was told its ${c.rpc} (key ${c.key}) succeeded, and the log has no event of it`);
          // An answer shows the milestone as it was when answered (a repeat: as it is now), so an
          // ended status needs that ending in the log, at or before the version answered.
          const ending = c.status ? ENDINGS[c.status] : undefined;
          if (ending && !endings.some((x) => x.type === ending && (c.version === undefined || x.version <= c.version))) {
            problems.push(`${id}: ${c.caller} was told after its ${c.rpc} that it is ${c.status}${c.version === undefined ? '' : ` at version ${c.version}`}, and the log's ending is ${endings.map((x) => `${x.type} at version ${x.version}`).join(', ') || 'none'}`);
          }
          if (endings.some((x) => x.id === own)) endingAnswered = true;
        } else if (REFUSALS.has(c.code) && logged) {
          problems.push(`${id}: ${c.caller} was told its ${c.rpc} (key ${c.key}) was refused (${c.code} ${c.reason ?? ''}), and the log holds its ${logged.type} event`);
        }
      }
      if (endings.length > 0 && !endingAnswered) unansweredEndings++;
    }),
    32,
  );
  return { milestones: byMilestone.size, calls: records.length, unansweredEndings, problems };
}
