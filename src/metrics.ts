import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's Prometheus metrics (prom-client), served on METRICS_ADDRESS at /metrics when
 * it is set. One registry per process; each module registers what it counts here.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const metrics = {
  /** Messages the ledger moved to its quarantine, by reason. */
  quarantined: new Counter({ name: 'escrow_ledger_quarantined_total', help: 'Messages the ledger moved to its quarantine instead of applying', labelNames: ['reason'], registers: [registry] }),
  /** Calls refused by the per-caller limits, by reason. */
  limited: new Counter({ name: 'escrow_calls_limited_total', help: 'Calls refused by the gateway limits', labelNames: ['reason'], registers: [registry] }),
  /** Bytes the event stream holds, and its limit. */
  streamBytes: new Gauge({ name: 'escrow_stream_bytes', help: 'Bytes the event stream holds', registers: [registry] }),
  streamMaxBytes: new Gauge({ name: 'escrow_stream_max_bytes', help: 'Byte limit of the event stream', registers: [registry] }),
};

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
    server.listen({ host: address.slice(0, cut).replace(/^\[(.*)\]$/, '$1') || undefined, port: Number(address.slice(cut + 1)) }, () => resolve());
  });
  return server;
}
