import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's Prometheus metrics (prom-client), served on METRICS_ADDRESS at /metrics when
 * it is set. One registry per process; each module registers what it counts here.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const metrics = {
  /** Messages the ledger moved to its quarantine, by reason. */
  quarantined: new Counter({
    name: 'escrow_ledger_quarantined_total',
    help: 'Messages the ledger moved to its quarantine instead of applying',
    labelNames: ['reason'],
    registers: [registry],
  }),
  /** Calls refused by the per-caller limits, by reason. */
  limited: new Counter({
    name: 'escrow_calls_limited_total',
    help: 'Calls refused by the gateway limits',
    labelNames: ['reason'],
    registers: [registry],
  }),
  /** Bytes the event stream holds, and its limit. */
  streamBytes: new Gauge({ name: 'escrow_stream_bytes', help: 'Bytes the event stream holds', registers: [registry] }),
  streamMaxBytes: new Gauge({ name: 'escrow_stream_max_bytes', help: 'Byte limit of the event stream', registers: [registry] }),
  /** The last sequence of the stream, read every second (with the bytes). */
  streamLastSeq: new Gauge({ name: 'escrow_stream_last_seq', help: 'Last sequence of the event stream', registers: [registry] }),
  /** Every call a gateway answered, by RPC and gRPC code, and how long it took. */
  calls: new Counter({
    name: 'escrow_rpc_calls_total',
    help: 'Calls answered, by RPC and code',
    labelNames: ['rpc', 'code'],
    registers: [registry],
  }),
  callSeconds: new Histogram({
    name: 'escrow_rpc_duration_seconds',
    help: 'Time from a call to its answer, by RPC',
    labelNames: ['rpc'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
  /** Optimistic appends that met another writer (expected last sequence wrong), by entity kind. */
  appendConflicts: new Counter({
    name: 'escrow_append_conflicts_total',
    help: 'Optimistic appends refused because another writer appended first',
    labelNames: ['entity'],
    registers: [registry],
  }),
  unstoredDuplicates: new Counter({
    name: 'escrow_log_unstored_duplicates_total',
    help: 'Appends answered "duplicate" at sequence 0 (not stored; nats-server#6415) and tried again with a fresh msgID',
    registers: [registry],
  }),
  logRetries: new Counter({
    name: 'escrow_log_retries_total',
    help: 'JetStream requests tried again after a transient cluster error (no leader yet)',
    registers: [registry],
  }),
  /** The ledger worker's batches: events per batch and time per batch; its cursor. */
  batchEvents: new Histogram({
    name: 'escrow_ledger_batch_events',
    help: 'Stream messages per ledger batch',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [registry],
  }),
  batchSeconds: new Histogram({
    name: 'escrow_ledger_batch_seconds',
    help: 'Time to apply one ledger batch',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  }),
  ledgerCursor: new Gauge({
    name: 'escrow_ledger_cursor',
    help: 'The last stream sequence the ledger applied (active worker)',
    registers: [registry],
  }),
  /** Messages the stream holds beyond the ledger cursor, as the active worker last saw them. */
  ledgerLag: new Gauge({
    name: 'escrow_ledger_lag_messages',
    help: 'Stream messages not yet applied by the ledger (active worker)',
    registers: [registry],
  }),
  /** A worker stopped on a broken invariant: alert on any increase. */
  invariantStops: new Counter({
    name: 'escrow_ledger_invariant_stops_total',
    help: 'Ledger workers stopped on a broken invariant',
    registers: [registry],
  }),
  /** Sagas (a funding, an arbitration fee) the read model shows waiting past the sweep's bound, as the last sweep found them (at most its batch), and the oldest one's age. */
  sagasStale: new Gauge({
    name: 'escrow_sagas_stale',
    help: 'Milestones waiting in a saga (pending funding, an arbitration fee) past the sweep bound',
    registers: [registry],
  }),
  sagaOldestSeconds: new Gauge({
    name: 'escrow_saga_oldest_wait_seconds',
    help: 'Age of the oldest stale saga the last sweep found',
    registers: [registry],
  }),
  /** How late a durable timer (dispute deadline, auto-release) fired after its due time. */
  timerLateness: new Histogram({
    name: 'escrow_timer_lateness_seconds',
    help: 'Delay between a timer due time and its firing',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600],
    registers: [registry],
  }),
};

/** What the runtime reports when /metrics is read: resident actors and queued commands per kind, calls waiting for the ledger. */
export interface RuntimeGauges {
  kind: string;
  resident(): number;
  queued(): number;
}
const runtimeSources = new Set<RuntimeGauges>();
const waitSources = new Set<() => { waiting: number; oldestMs: number }>();
/** Registers a source of the actor gauges; returns its removal. */
export function reportActors(source: RuntimeGauges): () => void {
  runtimeSources.add(source);
  return () => runtimeSources.delete(source);
}
/** Registers a source of calls waiting for a ledger outcome (deposits, withdrawals, sagas); returns its removal. */
export function reportWaiters(source: () => { waiting: number; oldestMs: number }): () => void {
  waitSources.add(source);
  return () => waitSources.delete(source);
}
new Gauge({
  name: 'escrow_actors_resident',
  help: 'Actors held in memory, by entity kind',
  labelNames: ['kind'],
  registers: [registry],
  collect() {
    this.reset();
    for (const s of runtimeSources) this.inc({ kind: s.kind }, s.resident());
  },
});
new Gauge({
  name: 'escrow_mailbox_queued',
  help: 'Commands queued in actor mailboxes, by entity kind',
  labelNames: ['kind'],
  registers: [registry],
  collect() {
    this.reset();
    for (const s of runtimeSources) this.inc({ kind: s.kind }, s.queued());
  },
});
new Gauge({
  name: 'escrow_outcome_waiters',
  help: 'Calls and sagas waiting for a ledger outcome',
  registers: [registry],
  collect() {
    this.set([...waitSources].reduce((n, s) => n + s().waiting, 0));
  },
});
new Gauge({
  name: 'escrow_outcome_oldest_wait_seconds',
  help: 'Age of the oldest wait for a ledger outcome',
  registers: [registry],
  collect() {
    this.set(Math.max(0, ...[...waitSources].map((s) => s().oldestMs)) / 1000);
  },
});

/** Serves /metrics on `address` (host:port); resolves to the server. */
export async function serveMetrics(address: string): Promise<Server> {
  const cut = address.lastIndexOf(':');
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.slice(0, cut).replace(/^\[(.*)\]$/, '$1') || undefined, port: Number(address.slice(cut + 1)) }, () =>
      resolve(),
    );
  });
  return server;
}
