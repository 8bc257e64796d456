import * as grpc from '@grpc/grpc-js';
import type { CallContext } from '../app/milestones.js';
import { EscrowError, ResourceExhausted } from '../errors.js';
import type { Logger } from '../log.js';
import type { Authenticator } from './auth.js';
import { toServiceError } from './status.js';

export interface HandlerDeps {
  auth: Authenticator;
  logger: Logger;
  /** Calls in progress, bounded by `max`. */
  inflight: { count: number; max: number };
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
 * Wraps a unary handler: authenticate, run, map any error to a status in one place.
 * Unexpected errors are logged and answered INTERNAL without their text.
 */
export function unary<Req, Res>(deps: HandlerDeps, name: string, fn: (req: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    void (async () => {
      let admitted = false;
      try {
        admit(deps);
        admitted = true;
        const caller = await deps.auth.authenticate(call.metadata);
        callback(null, await fn(call.request, { caller, deadline: deadlineOf(call) }));
      } catch (err) {
        if (!(err instanceof EscrowError)) deps.logger.error({ err, rpc: name }, 'unexpected error');
        callback(toServiceError(err) as grpc.ServiceError);
      } finally {
        if (admitted) deps.inflight.count--;
      }
    })();
  };
}

export function serverStream<Req, Res>(
  deps: HandlerDeps,
  name: string,
  fn: (req: Req, ctx: CallContext, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    void (async () => {
      let admitted = false;
      try {
        // An open stream counts as a call in progress, so streams are bounded too.
        admit(deps);
        admitted = true;
        const caller = await deps.auth.authenticate(call.metadata);
        await fn(call.request, { caller, deadline: deadlineOf(call) }, call);
        call.end();
      } catch (err) {
        if (!(err instanceof EscrowError)) deps.logger.error({ err, rpc: name }, 'unexpected error');
        // grpc-js ends a server stream with a status when the error is emitted on the call.
        call.emit('error', Object.assign(new Error('failed'), toServiceError(err)));
      } finally {
        if (admitted) deps.inflight.count--;
      }
    })();
  };
}

export function unimplemented(deps: HandlerDeps, name: string): grpc.handleUnaryCall<unknown, unknown> {
  return unary(deps, name, async () => {
    throw new EscrowError('UNIMPLEMENTED', 'NOT_IMPLEMENTED', `${name} is not implemented yet`);
  });
}
