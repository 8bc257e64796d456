import {
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  type Context,
  type Link,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { MsgHdrs } from '@nats-io/transport-node';
import { ignoreFailure } from './log.js';

/**
 * Optional OpenTelemetry tracing. Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and OTEL_SDK_DISABLED is not "true"; then spans
 * go over OTLP/HTTP (the exporter reads the other OTEL_* variables, e.g. headers), named by
 * OTEL_SERVICE_NAME (default escrow-<role>).
 *
 * A gateway's span per call continues the caller's W3C `traceparent` (gRPC metadata); the
 * events the call appends carry its context in their NATS headers; the ledger worker's span
 * per batch links to the span of every event it applies. Off, all of this costs nothing: the
 * API's no-op tracer.
 */
const tracer = () => trace.getTracer('escrow-engine');
let shutdown: (() => Promise<void>) | null = null;

export async function startTracing(role: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || env.OTEL_SDK_DISABLED === 'true' || shutdown) return false;
  const [{ BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? `escrow-${role}` }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 500 })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  shutdown = () => provider.shutdown();
  return true;
}

/** Flushes and stops the exporter (at shutdown). */
export async function stopTracing(): Promise<void> {
  await shutdown?.().catch(ignoreFailure('shutting down the tracer'));
  shutdown = null;
}

const metadataGetter: TextMapGetter<{ get(key: string): unknown[] }> = {
  keys: () => [],
  get: (carrier, key) => {
    const v = carrier.get(key)[0];
    return typeof v === 'string' ? v : undefined;
  },
};

/** Runs one gRPC call in a server span continuing the caller's traceparent; `end` records its code. */
export function callSpan(
  rpc: string,
  metadata: { get(key: string): unknown[] },
): { run<T>(fn: () => Promise<T>): Promise<T>; end(code: string): void } {
  const parent = propagation.extract(context.active(), metadata, metadataGetter);
  const span = tracer().startSpan(
    `escrow.v1/${rpc}`,
    { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.method': rpc } },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  return {
    run: (fn) => context.with(ctx, fn),
    end: (code) => {
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== 'OK') span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      span.end();
    },
  };
}

export type TraceContext = Context;

/** The active context, to run work queued for later (an actor's mailbox) under the caller's span. */
export function activeContext(): Context {
  return context.active();
}

export function withContext<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  return context.with(ctx, fn);
}

/** Puts the active span's traceparent into an event's NATS headers. */
export function injectInto(headers: MsgHdrs): void {
  propagation.inject(context.active(), headers, { set: (h, k, v) => h.set(k, v) });
}

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  keys: () => [],
  get: (h, key) => h?.get(key) || undefined,
};

/** A span of the ledger worker over one batch, linked to the spans that appended its events. */
export function batchSpan(events: { headers?: MsgHdrs | undefined }[]): Span {
  const links: Link[] = [];
  for (const e of events) {
    const sc = trace.getSpanContext(propagation.extract(context.active(), e.headers, headerGetter));
    if (sc) links.push({ context: sc });
  }
  return tracer().startSpan('ledger.apply_batch', {
    kind: SpanKind.CONSUMER,
    links,
    attributes: { 'messaging.system': 'nats', 'messaging.batch.message_count': events.length },
  });
}
