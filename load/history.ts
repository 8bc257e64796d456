import { appendFileSync } from 'node:fs';
import type { EventLog } from '../src/events/log.js';
import { statusName } from '../src/client.js';
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
  /** Epoch ms when the call was sent (absent in older files and k6's). */
  sent?: number | undefined;
  /** The caller's user id (the idempotency key's scope). */
  caller: string;
  rpc: string;
  milestoneId: string;
  /** The idempotency key sent. */
  key: string;
  /** OK, or the gRPC status name of the refusal (FAILED_PRECONDITION, UNAVAILABLE, ...). */
  code: string;
  reason?: string | undefined;
  /** OK answers: the milestone's status and version as answered. Refusals for the state: the version they were decided at (the status's ErrorInfo). */
  status?: string | undefined;
  version?: number | undefined;
}

/** The record fields of a failed call: its status, the reason, and for a refusal for the state the version it was decided at. */
export function failureOf(err: unknown): Pick<CallRecord, 'code' | 'reason' | 'version'> {
  const e = err as { reason?: string | null; info?: Record<string, string> };
  const version = e.info?.version === undefined ? undefined : Number(e.info.version);
  return { code: statusName(err), reason: e.reason ?? undefined, ...(version === undefined ? {} : { version }) };
}

/** Statuses a milestone ends in, with the event type that ends it there. */
const ENDINGS: Record<string, string> = { RELEASED: 'released', CANCELLED: 'cancelled', RESOLVED: 'resolved' };
const ENDING_TYPES = new Set(Object.values(ENDINGS));
/** Answers that say the command was decided against (its event must not be in the log). UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED (retry) and the like say nothing. */
const REFUSALS = new Set(['FAILED_PRECONDITION', 'PERMISSION_DENIED', 'INVALID_ARGUMENT', 'NOT_FOUND']);

/** How far the server's clock (stored times) and the client's (sent times) may disagree before a stale refusal is called one. */
const CLOCK_TOLERANCE_MS = 50;

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
      const record: CallRecord = {
        t: Date.parse(data.time),
        caller: tag.caller ?? '',
        rpc: tag.rpc ?? '',
        milestoneId: tag.milestone ?? '',
        key: tag.key ?? '',
        code: tag.code ?? '',
      };
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
  /** Refusals decided at a version before the one their command's event (a copy's, sent at once) took effect at. */
  refusedThenApplied: number;
  problems: string[];
}

/**
 * Proves a history against the event log, per milestone: at most one ending event; every OK
 * answer has its command's event in the log (the event id is derived from the milestone, the
 * caller and the key, so it names exactly one command); an answer that said the milestone
 * ended has that ending in the log, at or before the version answered; a refused command has
 * no event in the log, unless the refusal names the version it was decided at and the
 * command's event came later (a copy sent at once that met the milestone where it was legal:
 * docs/api.md, Idempotency); and a refusal decided at a version was not decided from a view the log
 * had already passed when the call was sent. The money side is the auditor's (runAudit),
 * which callers run beside it.
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
  let refusedThenApplied = 0;
  await runBounded(
    [...byMilestone].map(([id, calls]) => async () => {
      const events = new Map<string, { type: string; version: number }>();
      const endings: { id: string; type: string; version: number }[] = [];
      /** When the server stored each version. */
      const storedAt = new Map<number, number>();
      for await (const e of log.readSubject<EntityEventData<unknown>>(log.names.milestone(id), 0, Number.MAX_SAFE_INTEGER, true)) {
        const type = e.event.type.split('.').slice(2, -1).join('.');
        events.set(e.event.id, { type, version: e.event.data.version });
        storedAt.set(e.event.data.version, e.storedAt!);
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
            problems.push(
              `${id}: ${c.caller} was told after its ${c.rpc} that it is ${c.status}${c.version === undefined ? '' : ` at version ${c.version}`}, and the log's ending is ${endings.map((x) => `${x.type} at version ${x.version}`).join(', ') || 'none'}`,
            );
          }
          if (endings.some((x) => x.id === own)) endingAnswered = true;
        } else if (REFUSALS.has(c.code)) {
          if (logged && c.version !== undefined && logged.version > c.version) refusedThenApplied++;
          if (logged && (c.version === undefined || logged.version <= c.version)) {
            const at = c.version === undefined ? '' : ` at version ${logged.version}, though refused at version ${c.version}`;
            problems.push(
              `${id}: ${c.caller} was told its ${c.rpc} (key ${c.key}) was refused (${c.code} ${c.reason ?? ''}), and the log holds its ${logged.type} event${at}`,
            );
          }
          const next = c.version === undefined || c.sent === undefined ? undefined : storedAt.get(c.version + 1);
          if (next !== undefined && next < c.sent! - CLOCK_TOLERANCE_MS) {
            problems.push(
              `${id}: ${c.caller}'s ${c.rpc} (key ${c.key}) was refused at version ${c.version}, and the log held version ${c.version! + 1} ${c.sent! - next} ms before the call was sent`,
            );
          }
        }
      }
      if (endings.length > 0 && !endingAnswered) unansweredEndings++;
    }),
    32,
  );
  return { milestones: byMilestone.size, calls: records.length, unansweredEndings, refusedThenApplied, problems };
}
