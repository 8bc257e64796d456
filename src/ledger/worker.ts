import { DeliverPolicy, JetStreamApiError, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { InvariantViolation } from '../errors.js';
import { cloudEvent, decode, type CloudEvent } from '../events/cloudevent.js';
import { JS_CODES, type EventLog } from '../events/log.js';
import { eventId } from '../ids.js';
import type { Logger } from '../log.js';
import { applyBatch, LedgerFenced, type Outcome, type StreamEvent } from './apply.js';
import type { Pool, PoolClient } from './db.js';
import { SIGNATURE_HEADER } from '../events/signing.js';
import { metrics } from '../metrics.js';
import { batchSpan } from '../tracing.js';
import * as sql from './sql.js';
import type { QuarantineRow } from './sql.js';
import { ignoreFailure } from '../log.js';

export interface WorkerOptions {
  log: EventLog;
  pool: Pool;
  logger: Logger;
  /** Most events applied in one transaction. */
  batchMax: number;
  /** How often a standby worker tries to take the lease. */
  standbyPollMs: number;
  /** Called with a broken invariant; the process should stop. */
  onFatal: (err: Error) => void;
  /** Fault injection (ESCROW_FAULT_PUBLISH_DELAY_MS): wait this long after commit before publishing the outcomes. */
  publishDelayMs?: number;
}

/** The CloudEvents type of a ledger outcome, published on <ns>.ledger.outcome.<causationId>. */
export const OUTCOME_TYPE = 'escrow.ledger.outcome.v1';

/**
 * The application_name of the session that holds the lease, `escrow-ledger:<ns>:<pid>`:
 * operators (and the tests) see in pg_stat_activity which process is the active worker.
 */
export const leaseSessionPrefix = (namespace: string) => `escrow-ledger:${namespace}:`;

const IDLE_WAKE_MS = 1_000;
const CONSUME_EXPIRES_MS = 1_000;
/** How long a consumer may deliver nothing while the stream is ahead of the cursor before it is taken for stalled. */
const STALL_MS = 5_000;
const RETRY_BACKOFF_MAX_MS = 5_000;
/** How often, and how far apart, a log that no longer holds what was posted is read again before the worker stops. */
const LOG_CHECKS = 5;
const LOG_CHECK_EVERY_MS = 1_000;

/**
 * The ledger worker: the only writer of money. One worker per namespace is active: the one
 * whose PostgreSQL session holds the ledger's advisory lock (the lease); the others stand
 * by and take over when that session ends (the worker died, or lost its connection). The
 * active worker reads the stream in order from the cursor kept in PostgreSQL (an ordered
 * consumer, no acknowledgements), applies each batch in one transaction on the lease's own
 * session, moving the cursor with a compare-and-set in the same transaction, and then
 * publishes the outcomes the gateways wait for (kept in an outbox until published).
 *
 * So every account and every milestone sees its events in stream order, whatever the number
 * of workers, and a crash anywhere applies nothing twice: a batch is committed with its
 * cursor or not at all.
 */
export class LedgerWorker {
  private stopping = false;
  private loop: Promise<void> | null = null;
  private messages: ConsumerMessages | null = null;
  private wake: (() => void) | null = null;
  /** Outcomes of batches up to this stream sequence have been published. */
  private published = 0;
  /** 'active' while this worker holds the lease and applies; 'standby' while another does. */
  role: 'starting' | 'standby' | 'active' | 'stopped' = 'starting';
  /** Batches applied since start, for tests and logs. */
  batches = 0;

  constructor(private readonly o: WorkerOptions) {}

  start(): Promise<void> {
    this.loop = this.run();
    return Promise.resolve();
  }

  /** Read afresh after an await: stop() sets it from outside the loop. */
  private stopRequested(): boolean {
    return this.stopping;
  }

  /** Graceful: the batch in progress commits and its outcomes are published, then the lease is let go. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.messages?.close().catch(ignoreFailure('closing the ledger consumer on stop'));
    await this.loop;
    this.role = 'stopped';
  }

  private async run(): Promise<void> {
    let backoff = 100;
    while (!this.stopping) {
      let client: PoolClient | null = null;
      try {
        client = await this.o.pool.connect();
        const lock = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [
          `escrow-ledger:${this.o.log.names.namespace}`,
        ]);
        if (!lock.rows[0]?.ok) {
          client.release();
          client = null;
          if (this.role !== 'standby') this.o.logger.info('another worker holds the ledger lease; standing by');
          this.role = 'standby';
          await this.sleep(this.o.standbyPollMs);
          continue;
        }
        this.role = 'active';
        this.o.logger.info('took the ledger lease');
        await client.query('SELECT set_config($1, $2, false)', [
          'application_name',
          `${leaseSessionPrefix(this.o.log.names.namespace)}${process.pid}`,
        ]);
        await this.lead(client);
        backoff = 100;
      } catch (err) {
        if (err instanceof InvariantViolation) {
          this.o.logger.fatal({ err }, 'ledger invariant violated; stopping the worker');
          metrics.invariantStops.inc();
          this.stopping = true;
          this.role = 'stopped';
          this.o.onFatal(err);
          return;
        }
        if (this.stopRequested()) return;
        this.o.logger.warn({ err: String(err) }, 'the ledger worker lost its lease or its connection; starting over from the cursor');
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, RETRY_BACKOFF_MAX_MS);
      } finally {
        // Destroying the session is what lets the lease go: another worker may take it at once.
        client?.release(true);
        if (this.role === 'active') this.role = 'starting';
      }
    }
  }

  /** Applies the stream from the cursor while this worker holds the lease on `client`'s session. */
  private async lead(client: PoolClient): Promise<void> {
    await this.publishOutbox(client);
    let cursor = await this.cursor(client);
    await this.logStillHolds(client, cursor);
    const { js, names } = this.o.log;
    const consumer = await js.consumers.get(names.stream, {
      filter_subjects: names.allSubjects,
      ...(cursor > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: cursor + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    const buffer: JsMsg[] = [];
    let lastDelivery = Date.now();
    const messages = await consumer.consume({
      max_messages: this.o.batchMax,
      // Short pulls: heartbeats every 500 ms, so a consumer lost with its server (a cluster
      // node gone) is noticed and recreated from the last sequence within about a second.
      expires: CONSUME_EXPIRES_MS,
      callback: (m) => {
        buffer.push(m);
        lastDelivery = Date.now();
        this.wake?.();
      },
    });
    this.messages = messages;
    const consumerState = { ended: false };
    void messages.closed().then(() => {
      consumerState.ended = true;
      this.wake?.();
    });
    try {
      while (!this.stopRequested() && !consumerState.ended) {
        if (buffer.length === 0) {
          await this.sleep(IDLE_WAKE_MS);
          // A consumer lost with a cluster node is normally recreated by the client; if it is
          // not (the new leader was not elected yet when it tried), nothing would ever arrive
          // again. Nothing delivered for a while although the consumer has messages pending
          // (or is gone) means a stalled consumer: start over from the cursor with a new one.
          if (Date.now() - lastDelivery > STALL_MS) {
            lastDelivery = Date.now();
            const info = await consumer.info().catch(() => null);
            if (!info || info.num_pending > 0) {
              throw new Error(
                `the ledger consumer delivered nothing for ${STALL_MS} ms (${info ? `${info.num_pending} pending` : 'it is gone'}); starting over from the cursor ${cursor}`,
              );
            }
          }
          continue;
        }
        cursor = await this.process(client, buffer.splice(0, this.o.batchMax), cursor);
      }
    } finally {
      this.messages = null;
      await messages.close().catch(ignoreFailure('closing the ledger consumer after its loop'));
    }
    if (!this.stopping) throw new Error('the ledger consumer ended');
  }

  /** Applies one batch (in stream order) and publishes its outcomes; returns the new cursor. */
  private async process(client: PoolClient, msgs: JsMsg[], cursor: number): Promise<number> {
    await this.contiguous(msgs, cursor);
    const { events, quarantine } = this.screen(msgs);
    const last = msgs.at(-1);
    if (!last) return cursor;
    const to = last.seq;
    const position = { from: cursor, to, published: this.published };
    let outcomes: Outcome[];
    const stopTimer = metrics.batchSeconds.startTimer();
    const span = batchSpan(msgs);
    try {
      outcomes = await applyBatch(client, events, position, quarantine);
      span.end();
      stopTimer();
      metrics.batchEvents.observe(msgs.length);
      metrics.ledgerCursor.set(to);
      metrics.ledgerLag.set(last.info.pending);
    } catch (err) {
      span.end();
      const poison = poisonReason(err);
      if (poison === null) throw err;
      // One event of the batch cannot be applied: find it by applying the batch one message at a time.
      if (msgs.length > 1) {
        for (const m of msgs) cursor = await this.process(client, [m], cursor);
        return cursor;
      }
      // This one: moved aside, and everything behind it goes on.
      const m = last;
      const event = events[0]?.event;
      outcomes = await applyBatch(client, [], position, [
        {
          seq: m.seq,
          subject: m.subject,
          eventId: event?.id ?? null,
          eventType: event?.type ?? null,
          reason: 'CANNOT_APPLY',
          detail: poison.slice(0, 2_000),
          signed: true,
          payload: text(m.data),
        },
      ]).catch((again: unknown) => {
        throw poisonReason(again) === null
          ? again
          : new InvariantViolation(`stream seq ${m.seq} can neither be applied nor moved aside: ${String(again)}`);
      });
      metrics.quarantined.inc({ reason: 'CANNOT_APPLY' });
      this.o.logger.error(
        { seq: m.seq, subject: m.subject, eventId: event?.id, detail: poison },
        'an event of the engine cannot be applied: moved to the quarantine (npm run quarantine)',
      );
    }
    if (quarantine.length > 0) {
      for (const q of quarantine) {
        metrics.quarantined.inc({ reason: q.reason });
        this.o.logger.error(
          { seq: q.seq, subject: q.subject, reason: q.reason },
          'a message the engine did not publish was moved to the quarantine',
        );
      }
    }
    if (this.o.publishDelayMs && outcomes.length > 0) await sleep(this.o.publishDelayMs);
    await this.publish(outcomes);
    this.published = to;
    this.batches++;
    return to;
  }

  /** Splits a batch into the engine's events and the messages to move aside (not signed by it, not CloudEvents, another source). */
  /**
   * The log still holds what the ledger applied from it: the stream reaches the cursor, and
   * the last event posted is still the message at the sequence it was posted from. A stream
   * that lost or rewrote its tail (a JetStream cluster can: docs/operations.md, scale-out)
   * would otherwise have its new events skipped as if applied, or applied over
   * postings of events it no longer has: the worker stops instead (a broken invariant), for a
   * person to compare the log with the ledger.
   */
  private async logStillHolds(client: PoolClient, cursor: number): Promise<void> {
    if (cursor === 0) return;
    const { rows } = await client.query<{ event_id: string; seq: string }>(
      'SELECT event_id::text, stream_seq::text AS seq FROM postings WHERE stream_seq <= $1 ORDER BY stream_seq DESC LIMIT 1',
      [cursor],
    );
    const last = rows[0];
    // A leader just elected may not have applied yet all the old one committed: a difference
    // counts only when it lasts (checked again for a few seconds).
    let problem = '';
    for (let attempt = 0; attempt < LOG_CHECKS; attempt++) {
      if (attempt > 0) await this.sleep(LOG_CHECK_EVERY_MS);
      if (this.stopping) return;
      const tail = await this.o.log.tailSeq();
      if (tail < cursor) {
        problem = `the stream ends at sequence ${tail}, before the ledger's cursor ${cursor}: events the ledger applied are no longer in the log`;
        continue;
      }
      if (!last) return;
      // The id only, signed or not: this asks whether the event is there, not who wrote it.
      const held = await this.o.log.idAt(Number(last.seq));
      if (held === last.event_id) return;
      problem = `the log no longer holds event ${last.event_id} at sequence ${last.seq}, where the ledger posted it from (${held ? `it holds ${held}` : 'nothing is there'})`;
    }
    throw new InvariantViolation(problem);
  }

  /**
   * The consumer takes every subject, so the stream's sequences reach it without gaps, each
   * once. A batch that does not start right after the cursor, or skips or repeats a sequence,
   * is never applied (its cursor would pass over events): the worker starts over from the
   * cursor. Only a sequence the stream no longer holds (a message an operator deleted) is passed.
   */
  private async contiguous(msgs: JsMsg[], cursor: number): Promise<void> {
    let expected = cursor + 1;
    for (const m of msgs) {
      if (m.seq < expected)
        throw new Error(`the ledger consumer delivered stream seq ${m.seq} after ${expected - 1}; starting over from the cursor ${cursor}`);
      for (let seq = expected; seq < m.seq; seq++) {
        if (await this.o.log.holds(seq))
          throw new Error(`the ledger consumer skipped stream seq ${seq} (delivered ${m.seq}); starting over from the cursor ${cursor}`);
      }
      expected = m.seq + 1;
    }
  }

  private screen(msgs: JsMsg[]): { events: StreamEvent[]; quarantine: QuarantineRow[] } {
    const { log } = this.o;
    const events: StreamEvent[] = [];
    const quarantine: QuarantineRow[] = [];
    for (const m of msgs) {
      const signed = log.verified(m.subject, m.data, m.headers?.get(SIGNATURE_HEADER), m.seq);
      let event: CloudEvent | null = null;
      try {
        event = decode(m.data);
      } catch {
        // Not a CloudEvent.
      }
      const aside = (reason: QuarantineRow['reason'], detail: string) =>
        quarantine.push({
          seq: m.seq,
          subject: m.subject,
          eventId: event?.id ?? null,
          eventType: event?.type ?? null,
          reason,
          detail,
          signed,
          payload: text(m.data),
        });
      if (!signed) aside('UNSIGNED', 'no valid signature of this deployment');
      else if (!event) aside('NOT_A_CLOUDEVENT', 'the body is not a CloudEvents 1.0 structured event');
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- a foreign event's source may be any JSON value
      else if (event.source !== log.names.source) aside('FOREIGN_SOURCE', `source ${String(event.source).slice(0, 200)}`);
      else events.push({ seq: m.seq, event });
    }
    return { events, quarantine };
  }

  /**
   * Outcomes are published after commit, each with a msgID derived from its cause: published
   * again (the outbox after a crash) they are dropped by JetStream as repeats.
   */
  private async publish(outcomes: Outcome[]): Promise<void> {
    const { log } = this.o;
    await Promise.all(
      outcomes.map((o) => log.append(log.names.outcome(o.causationId), outcomeEvent(log.names.source, o), null, {}, { consequence: true })),
    );
  }

  /** What a worker that died between commit and publish left: published before anything else. */
  private async publishOutbox(client: PoolClient): Promise<void> {
    const left = await sql.readOutbox(client);
    if (left.length === 0) return;
    await this.publish(left.map((row) => row.payload as Outcome));
    await sql.deleteOutbox(client, left[left.length - 1]?.seq ?? 0);
    this.o.logger.info({ outcomes: left.length }, 'published outcomes a previous worker had committed');
  }

  /**
   * The cursor. A namespace whose ledger ran with the durable consumer of earlier versions
   * starts where that consumer's acknowledgements ended (everything at or below its ack floor
   * was committed), and the old consumer is removed.
   */
  private async cursor(client: PoolClient): Promise<number> {
    const { jsm, names } = this.o.log;
    // A stream made again starts its sequences over and could bring the same event ids back:
    // the ledger does not follow another stream than the one its postings came from.
    const created = (await jsm.streams.info(names.stream)).created;
    const followed = await sql.cursorStream(client, created);
    if (followed !== created) {
      throw new InvariantViolation(
        `the stream ${names.stream} was made again (created ${created}); this ledger follows the one created ${followed}. Restore that stream, or run the new one in a new namespace`,
      );
    }
    const cursor = await sql.readCursor(client);
    if (cursor > 0) return cursor;
    const legacy = await jsm.consumers.info(names.stream, names.ledgerConsumer).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JS_CODES.ConsumerNotFound) return null;
      throw err;
    });
    if (!legacy) return 0;
    const floor = legacy.ack_floor.stream_seq;
    if (floor > 0 && !(await sql.seedCursor(client, floor))) throw new LedgerFenced(0);
    await jsm.consumers.delete(names.stream, names.ledgerConsumer).catch(ignoreFailure('deleting a ledger consumer that may not exist'));
    this.o.logger.info({ cursor: floor }, 'moved the ledger from its durable consumer to the cursor');
    return floor;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }
}

export function outcomeEvent(source: string, o: Outcome): CloudEvent<Outcome> {
  return cloudEvent({
    id: eventId('outcome', o.causationId, 'ledger'),
    source,
    type: OUTCOME_TYPE,
    subject: o.causationId,
    time: new Date().toISOString(),
    data: o,
  });
}

/**
 * Why an error of applying a batch is the data's fault (a broken invariant, or PostgreSQL
 * refusing the data: SQLSTATE class 22 or 23), so that retrying would fail the same way; null
 * for anything a retry may cure (a lost connection, a timeout).
 */
function poisonReason(err: unknown): string | null {
  if (err instanceof InvariantViolation) return err.message;
  const sqlstate = (err as { code?: unknown }).code;
  if (typeof sqlstate === 'string' && /^2[23]/.test(sqlstate)) return `SQLSTATE ${sqlstate}: ${(err as Error).message}`;
  return null;
}

/** A message body as text for the quarantine (bounded; NUL cannot be stored in PostgreSQL text). */
function text(body: Uint8Array): string {
  return Buffer.from(body.subarray(0, 256 * 1024))
    .toString('utf8')
    .replaceAll('\u0000', '\uFFFD');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
