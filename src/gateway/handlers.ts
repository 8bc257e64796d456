import * as grpc from '@grpc/grpc-js';
import type { CallContext } from '../app/milestones.js';
import { EscrowError, ResourceExhausted } from '../errors.js';
import type { Logger } from '../log.js';
import type { Authenticator } from './auth.js';
import type { PageTokens } from './page-token.js';
import { toServiceError } from './status.js';

export interface HandlerDeps {
  auth: Authenticator;
  logger: Logger;
  /** Calls in progress, bounded by `max`. */
  inflight: { count: number; max: number };
  pages: PageTokens;
}

function admit(deps: HandlerDeps): void {
  if (deps.inflight.count >= deps.inflight.max) {
    throw new ResourceExhausted('GATEWAY_BUSY', 'too many calls in progress; retry with backoff');
  }
  deps.inflight.count++;
}

function deadlineOf(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

/**
 * Every call, unary or streaming, goes through here: admitted against the in-flight bound
 * (an open stream counts too), authenticated, run, and any error mapped to a status in one
 * place. Unexpected errors are logged and answered INTERNAL without their text.
 */
async function handle(
  deps: HandlerDeps,
  name: string,
  call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline },
  run: (ctx: CallContext) => Promise<void>,
  fail: (status: Partial<grpc.StatusObject>) => void,
): Promise<void> {
  let admitted = false;
  try {
    admit(deps);
    admitted = true;
    const caller = await deps.auth.authenticate(call.metadata);
    await run({ caller, deadline: deadlineOf(call) });
  } catch (err) {
    if (!(err instanceof EscrowError)) deps.logger.error({ err, rpc: name }, 'unexpected error');
    // What a dependency said (a database error's text) is logged, never sent to the client.
    else if (err.cause !== undefined) deps.logger.warn({ rpc: name, reason: err.reason, cause: String(err.cause) }, 'call failed on a dependency');
    fail(toServiceError(err));
  } finally {
    if (admitted) deps.inflight.count--;
  }
}

export function unary<Req, Res>(deps: HandlerDeps, name: string, fn: (req: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) =>
    void handle(
      deps,
      name,
      call,
      async (ctx) => callback(null, await fn(call.request, ctx)),
      (status) => callback(status as grpc.ServiceError),
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

export function unimplemented(deps: HandlerDeps, name: string): grpc.handleUnaryCall<unknown, unknown> {
  return unary(deps, name, async () => {
    throw new EscrowError('UNIMPLEMENTED', 'NOT_IMPLEMENTED', `${name} is not implemented yet`);
  });
}
