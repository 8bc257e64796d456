import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { freePort } from '../src/dev/embedded.js';
import { loadEscrowPackage } from '../src/gateway/proto.js';
import { EscrowClient, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, eventually, freshNamespace } from './helpers/engine.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  links?: { traceId: string; spanId: string }[];
}

describe('OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  it("a call's span continues the caller's traceparent; the ledger's batch span links to it through the event's NATS headers", async () => {
    // An OTLP/HTTP collector of the test's own: every span it is sent, and the service names.
    const spans: OtlpSpan[] = [];
    const services = new Set<string>();
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += String(d)));
      req.on('end', () => {
        const doc = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: OtlpSpan[] }[];
          }[];
        };
        for (const rs of doc.resourceSpans) {
          for (const a of rs.resource.attributes) if (a.key === 'service.name' && a.value.stringValue) services.add(a.value.stringValue);
          for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const port = await freePort();
    await new Promise<void>((ok) => collector.listen(port, '127.0.0.1', ok));
    const ns = freshNamespace();
    const engine = await EngineProcess.start('all', ns, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: 'escrow-under-test',
    });
    const c = new EscrowClient(engine.address);
    const pkg = loadEscrowPackage();
    const raw = new pkg.AccountService(engine.address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
      Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;
    try {
      const traceId = randomBytes(16).toString('hex');
      const parentId = randomBytes(8).toString('hex');
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${await c.token(PAYMENTS.id, PAYMENTS.roles)}`);
      md.set('traceparent', `00-${traceId}-${parentId}-01`);
      const reply = await new Promise<{ status: string }>((ok, fail) =>
        raw.Deposit!.call(
          raw,
          { user_id: 'emp-trace', amount: usd('3.00'), external_reference: `trace-${traceId}` },
          md,
          (err: Error | null, r: { status: string }) => (err ? fail(err) : ok(r)),
        ),
      );
      expect(reply.status).toBe('APPLIED');
      await eventually(async () => {
        const call = spans.find((s) => s.name === 'escrow.v1/Deposit' && s.traceId === traceId);
        expect(call?.parentSpanId).toBe(parentId);
        const batch = spans.find((s) => s.name === 'ledger.apply_batch' && s.links?.some((l) => l.traceId === traceId));
        expect(batch).toBeDefined();
        expect(services.has('escrow-under-test')).toBe(true);
      }, 15_000);
    } finally {
      raw.close();
      c.close();
      await engine.kill();
      collector.closeAllConnections();
      collector.close();
      await dropNamespace(ns);
    }
  });
});
