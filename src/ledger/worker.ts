import { AckPolicy, DeliverPolicy, JetStreamApiError, type JsMsg } from '@nats-io/jetstream';
import { InvariantViolation } from '../errors.js';
import { cloudEvent, decode, type CloudEvent } from '../events/cloudevent.js';
import type { EventLog } from '../events/log.js';
import { eventId } from '../ids.js';
import type { Logger } from '../log.js';
import { applyBatch, type Outcome, type StreamEvent } from './apply.js';
import type { Pool } from './db.js';

export interface WorkerOptions {
  log: EventLog;
  pool: Pool;
  logger: Logger;
  /** Most events applied in one transaction; also the consumer's max_ack_pending. */
  batchMax: number;
  /** Consumer ack wait: an unacknowledged batch is redelivered after it. */
  ackWaitMs: number;
  /** Called with a broken invariant; the process should stop. */
  onFatal: (err: Error) => void;
  /** Fault injection (ESCROW_FAULT_ACK_DELAY_MS): wait this long after commit before acking. */
  ackDelayMs?: number;
}

/** The CloudEvents type of a ledger outcome, published on <ns>.ledger.outcome.<causationId>. */
export const OUTCOME_TYPE = 'escrow.ledger.outcome.v1';

const CONSUME_EXPIRES_MS = 1_000;
const RETRY_BACKOFF_MAX_MS = 5_000;

/**
 * The ledger worker: the only writer of money. It pulls events from a durable consumer in
 * batches, applies each batch in one Postgres transaction, publishes the outcomes the
 * gateways wait for, and acknowledges only after commit.
 *
 * max_ack_pending equals the batch size: while a batch is unacknowledged (in progress, or
 * held by a worker that died) no later event is delivered, so events are applied in stream
 * order even across restarts and several workers.
 */
export class LedgerWorker {
  private stopping = false;
  private loop: Promise<void> | null = null;
  private current: { close(): Promise<void | Error> } | null = null;
  /** Batches applied since start, for tests and logs. */
  batches = 0;

  constructor(private readonly o: WorkerOptions) {}

  async start(): Promise<void> {
    await this.ensureConsumer();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.current?.close().catch(() => {});
    await this.loop;
  }

  private async ensureConsumer(): Promise<void> {
    const { jsm, names } = this.o.log;
    const config = {
      durable_name: names.ledgerConsumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: names.allSubjects,
      ack_wait: this.o.ackWaitMs * 1_000_000,
      max_ack_pending: this.o.batchMax,
      max_deliver: -1,
    };
    try {
      await jsm.consumers.info(names.stream, names.ledgerConsumer);
      await jsm.consumers.update(names.stream, names.ledgerConsumer, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== 10014) throw err;
      await jsm.consumers.add(names.stream, config).catch((addErr: unknown) => {
        // Created by another worker in the meantime: the same consumer.
        if (!(addErr instanceof JetStreamApiError)) throw addErr;
      });
    }
  }

  private async run(): Promise<void> {
    const { js, names } = this.o.log;
    let backoff = 100;
    while (!this.stopping) {
      try {
        const consumer = await js.consumers.get(names.stream, names.ledgerConsumer);
        // Messages flow in as they are published; each turn takes whatever has arrived (up
        // to batchMax, which max_ack_pending also bounds) and applies it as one batch.
        const buffer: JsMsg[] = [];
        let wake: (() => void) | null = null;
        const messages = await consumer.consume({
          max_messages: this.o.batchMax,
          expires: CONSUME_EXPIRES_MS,
          callback: (m) => {
            buffer.push(m);
            wake?.();
          },
        });
        this.current = messages;
        let ended = false;
        void messages.closed().then(() => {
          ended = true;
          wake?.();
        });
        try {
          // When the subscription ends (server restarted, consumer gone), the outer loop makes a new one.
          while (!this.stopping && !(ended && buffer.length === 0)) {
            if (buffer.length === 0) {
              await new Promise<void>((r) => {
                wake = r;
                setTimeout(r, CONSUME_EXPIRES_MS);
              });
              wake = null;
              continue;
            }
            await this.process(buffer.splice(0, this.o.batchMax));
            backoff = 100;
          }
        } finally {
          this.current = null;
          await messages.close().catch(() => {});
        }
      } catch (err) {
        if (err instanceof InvariantViolation) {
          this.o.logger.fatal({ err }, 'ledger invariant violated; stopping the worker');
          this.stopping = true;
          this.o.onFatal(err);
          return;
        }
        if (this.stopping) return;
        this.o.logger.warn({ err: String(err) }, 'ledger worker loop failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, RETRY_BACKOFF_MAX_MS);
      }
    }
  }

  /** Applies one batch, retrying the same batch (not relying on redelivery) while Postgres fails. */
  private async process(msgs: JsMsg[]): Promise<void> {
    const events: StreamEvent[] = [];
    for (const m of msgs) {
      try {
        events.push({ seq: m.seq, event: decode(m.data) });
      } catch {
        this.o.logger.warn({ subject: m.subject, seq: m.seq }, 'skipping a message that is not a CloudEvent');
      }
    }
    let outcomes: Outcome[];
    // A slow transaction must not let the batch be redelivered to another worker meanwhile.
    const heartbeat = setInterval(() => msgs.forEach((m) => m.working()), Math.max(200, Math.floor(this.o.ackWaitMs / 3)));
    try {
      outcomes = await this.applyWithRetry(events);
    } finally {
      clearInterval(heartbeat);
    }
    // Published after commit, each with a msgID derived from its cause: a redelivered batch
    // publishes the same outcome again and JetStream drops the repeat.
    await Promise.all(outcomes.map((o) => this.o.log.append(this.o.log.names.outcome(o.causationId), outcomeEvent(this.o.log.names.source, o), null)));
    if (this.o.ackDelayMs) await sleep(this.o.ackDelayMs);
    for (const m of msgs) m.ack();
    this.batches++;
  }

  private async applyWithRetry(events: StreamEvent[]): Promise<Outcome[]> {
    let backoff = 100;
    for (;;) {
      try {
        const client = await this.o.pool.connect();
        let failure: Error | undefined;
        try {
          return await applyBatch(client, events);
        } catch (err) {
          failure = err as Error;
          throw err;
        } finally {
          // A connection that failed mid-transaction is discarded, not reused.
          client.release(failure);
        }
      } catch (err) {
        if (err instanceof InvariantViolation || this.stopping) throw err;
        // Data errors (SQLSTATE class 22) and constraint violations (class 23) fail the same way
        // on every retry: a silent retry loop would stall all money. Stop loudly instead.
        const sqlstate = (err as { code?: unknown }).code;
        if (typeof sqlstate === 'string' && /^2[23]/.test(sqlstate)) {
          throw new InvariantViolation(`a ledger batch cannot be applied (SQLSTATE ${sqlstate}): ${(err as Error).message}`);
        }
        this.o.logger.warn({ err: String(err) }, 'applying a ledger batch failed; retrying the same batch');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, RETRY_BACKOFF_MAX_MS);
      }
    }
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
