import * as grpc from '@grpc/grpc-js';
import { EscrowError, type ErrorCode } from '../errors.js';
import { loadRpcStatusTypes } from './proto.js';

/** The ErrorInfo domain of every error this service returns. */
export const ERROR_DOMAIN = 'escrow.v1';

const CODES: Record<ErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  NOT_FOUND: grpc.status.NOT_FOUND,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  ABORTED: grpc.status.ABORTED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  UNIMPLEMENTED: grpc.status.UNIMPLEMENTED,
  INTERNAL: grpc.status.INTERNAL,
};

const types = loadRpcStatusTypes();

/**
 * The one place errors become gRPC statuses. Every status carries the stable reason three
 * ways: google.rpc.ErrorInfo in grpc-status-details-bin, the `escrow-reason` trailer, and the
 * start of the details string ("REASON: message").
 */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const e = err instanceof EscrowError ? err : new EscrowError('INTERNAL', 'INTERNAL', 'internal error');
  const code = CODES[e.code];
  // Race losers get the same refusal by the thousand: its encoded details are made once.
  const cacheKey = `${code}\u0000${e.reason}\u0000${e.message}\u0000${JSON.stringify(e.metadata)}`;
  let bin = encoded.get(cacheKey);
  if (bin) {
    encoded.delete(cacheKey);
  } else {
    const info = types.ErrorInfo.encode(types.ErrorInfo.create({ reason: e.reason, domain: ERROR_DOMAIN, metadata: e.metadata })).finish();
    bin = Buffer.from(
      types.Status.encode(
        types.Status.create({
          code,
          message: e.message,
          details: [{ type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: info }],
        }),
      ).finish(),
    );
    if (encoded.size >= ENCODED_MAX) encoded.delete(encoded.keys().next().value ?? '');
  }
  encoded.set(cacheKey, bin);
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', bin);
  metadata.set('escrow-reason', e.reason);
  return { code, details: `${e.reason}: ${e.message}`, metadata };
}

/** Encoded grpc-status-details-bin by status, reason, message and metadata, least recently used first. */
const encoded = new Map<string, Buffer>();
const ENCODED_MAX = 1_000;

/** Decodes the ErrorInfo of a status (reason and metadata, e.g. `retry_after_ms`), for clients and tests. */
export function errorInfoOf(err: { metadata?: grpc.Metadata }): { reason: string; metadata: Record<string, string> } | null {
  const bin = err.metadata?.get('grpc-status-details-bin')[0];
  if (!(bin instanceof Buffer)) return null;
  const status = types.Status.decode(bin) as unknown as { details: { type_url: string; value: Uint8Array }[] };
  const detail = status.details.find((d) => d.type_url.endsWith('google.rpc.ErrorInfo'));
  if (!detail) return null;
  const info = types.ErrorInfo.decode(detail.value) as unknown as { reason: string; metadata?: Record<string, string> };
  return { reason: info.reason, metadata: { ...(info.metadata ?? {}) } };
}

export function reasonOf(err: { metadata?: grpc.Metadata }): string | null {
  return errorInfoOf(err)?.reason ?? null;
}
