import * as grpc from '@grpc/grpc-js';
import type { CallContext } from '../app/milestones.js';
import { MoneyError } from '../../actors/money.js';
import { EscrowError, InvalidArgument } from '../errors.js';
import { metrics } from '../metrics.js';
import { callSpan } from '../tracing.js';
import type { Logger } from '../log.js';
import type { Authenticator } from './auth.js';
import type { CallClass, CallerLimits } from './limits.js';
import type { PageTokens } from './page-token.js';
import { toServiceError } from './status.js';

export interface HandlerDeps {
  auth: Authenticator;
  logger: Logger;
  /** Calls in progress, per caller and in all, and rates (src/gateway/limits.ts). */
  limits: CallerLimits;
  pages: PageTokens;
  /** Unary calls this gateway has taken and not yet answered: a shutdown waits for them (src/gateway/server.ts). */
  calls: { active: number };
}

/** The calls that only read; WatchMilestone holds a stream; everything else is a command. */
const READS = new Set([
  'GetMilestone',
  'ListMilestones',
  'ListDisputes',
  'GetBalance',
  'ListLedgerEntries',
  'ListReviews',
  'GetReputation',
  'GetProject',
]);
function classOf(name: string): CallClass {
  return name === 'WatchMilestone' ? 'watch' : READS.has(name) ? 'read' : 'write';
}

function deadlineOf(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

/**
 * Every call, unary or streaming, goes through here: authenticated, admitted by the caller
 * limits (an open stream counts as a call in progress), run, and any error mapped to a status
 * in one place. Unexpected errors are logged and answered INTERNAL without their text.
 */
async function handle(
  deps: HandlerDeps,
  name: string,
  call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline; request?: unknown; sendMetadata(md: grpc.Metadata): void },
  run: (ctx: CallContext) => Promise<void>,
  fail: (status: Partial<grpc.StatusObject>) => void,
): Promise<void> {
  const started = performance.now();
  // A shutdown waits for calls, not for open watch streams (those end with the server).
  const counted = classOf(name) !== 'watch';
  if (counted) deps.calls.active++;
  const span = callSpan(name, call.metadata);
  const requestId = requestIdOf(call.metadata);
  const echo = new grpc.Metadata();
  echo.set(REQUEST_ID, requestId);
  call.sendMetadata(echo);
  let release: (() => void) | null = null;
  let callerId: string | undefined;
  let outcome: { code: string; reason?: string } = { code: 'OK' };
  try {
    const caller = await deps.auth.authenticate(call.metadata);
    callerId = caller.id;
    release = deps.limits.admit(caller, classOf(name));
    await span.run(() => run({ caller, deadline: deadlineOf(call) }));
  } catch (thrown) {
    // An amount the money rules refused where no validator put it first is still the client's input.
    const err = thrown instanceof MoneyError ? new InvalidArgument(thrown.reason, thrown.message) : thrown;
    if (!(err instanceof EscrowError)) deps.logger.error({ err, rpc: name, requestId }, 'unexpected error');
    // What a dependency said (a database error's text) is logged, never sent to the client.
    else if (err.cause !== undefined)
      deps.logger.warn(
        { rpc: name, requestId, reason: err.reason, cause: err.cause instanceof Error ? err.cause.message : JSON.stringify(err.cause) },
        'call failed on a dependency',
      );
    outcome = err instanceof EscrowError ? { code: err.code, reason: err.reason } : { code: 'INTERNAL', reason: 'INTERNAL' };
    fail(toServiceError(err));
  } finally {
    if (counted) deps.calls.active--;
    release?.();
    const seconds = (performance.now() - started) / 1000;
    span.end(outcome.code);
    metrics.calls.inc({ rpc: name, code: outcome.code });
    metrics.callSeconds.observe({ rpc: name }, seconds);
    // One line per call: who, what, on which milestone, how it ended, how long it took. Never a token.
    const request = call.request as { milestone_id?: unknown } | undefined;
    deps.logger.info(
      {
        rpc: name,
        requestId,
        caller: callerId,
        milestone: typeof request?.milestone_id === 'string' ? request.milestone_id : undefined,
        ...outcome,
        ms: Math.round(seconds * 100_000) / 100,
      },
      'call',
    );
  }
}

/** The metadata key of a call's request id: the client's (`x-request-id`), or one made here; echoed in the response headers. */
export const REQUEST_ID = 'x-request-id';
const REQUEST_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;
let requestSeq = 0;
const requestPrefix = `${process.pid.toString(36)}-${Date.now().toString(36)}`;

function requestIdOf(metadata: grpc.Metadata): string {
  const given = metadata.get(REQUEST_ID)[0];
  if (typeof given === 'string' && REQUEST_ID_PATTERN.test(given)) return given;
  return `${requestPrefix}-${(++requestSeq).toString(36)}`;
}

export function unary<Req, Res>(
  deps: HandlerDeps,
  name: string,
  fn: (req: Req, ctx: CallContext) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) =>
    void handle(
      deps,
      name,
      call,
      async (ctx) => callback(null, await fn(call.request, ctx)),
      (status) => callback(status),
    );
}

export function serverStream<Req, Res>(
  deps: HandlerDeps,
  name: string,
  fn: (req: Req, ctx: CallContext, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) =>
    void handle(
      deps,
      name,
      call,
      async (ctx) => {
        await fn(call.request, ctx, call);
        call.end();
      },
      // grpc-js ends a server stream with a status when the error is emitted on the call.
      (status) => call.emit('error', Object.assign(new Error('failed'), status)),
    );
}
