/**
 * The typed errors of the engine. Each carries a stable machine-readable `reason`; the gateway
 * maps the class to a gRPC status in exactly one place (src/gateway/status.ts).
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'NOT_FOUND'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'ABORTED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'UNIMPLEMENTED'
  | 'INTERNAL';

export class EscrowError extends Error {
  readonly code: ErrorCode;
  readonly reason: string;
  readonly metadata: Record<string, string>;

  constructor(code: ErrorCode, reason: string, message: string, metadata: Record<string, string> = {}) {
    // Refusals are answers, not bugs: losers of a race get one each, so no stack is captured.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.code = code;
    this.reason = reason;
    this.metadata = metadata;
    this.name = new.target.name;
  }
}

export class InvalidArgument extends EscrowError {
  constructor(reason: string, message: string, metadata?: Record<string, string>) {
    super('INVALID_ARGUMENT', reason, message, metadata);
  }
}
export class FailedPrecondition extends EscrowError {
  constructor(reason: string, message: string, metadata?: Record<string, string>) {
    super('FAILED_PRECONDITION', reason, message, metadata);
  }
}
export class NotFound extends EscrowError {
  constructor(reason: string, message: string) {
    super('NOT_FOUND', reason, message);
  }
}
export class PermissionDenied extends EscrowError {
  constructor(reason: string, message: string) {
    super('PERMISSION_DENIED', reason, message);
  }
}
export class Unauthenticated extends EscrowError {
  constructor(reason: string, message: string) {
    super('UNAUTHENTICATED', reason, message);
  }
}
export class Aborted extends EscrowError {
  constructor(reason: string, message: string) {
    super('ABORTED', reason, message);
  }
}
export class ResourceExhausted extends EscrowError {
  constructor(reason: string, message: string, metadata?: Record<string, string>) {
    super('RESOURCE_EXHAUSTED', reason, message, metadata);
  }
}
export class Unavailable extends EscrowError {
  /** `cause`: the error of the dependency that was unavailable, kept for logs. */
  constructor(reason: string, message: string, cause?: unknown) {
    super('UNAVAILABLE', reason, message);
    if (cause !== undefined) this.cause = cause;
  }
}
export class DeadlineExceeded extends EscrowError {
  constructor(reason: string, message: string) {
    super('DEADLINE_EXCEEDED', reason, message);
  }
}

/**
 * A broken invariant in code that moves money. It is never mapped to a client answer:
 * the process that meets one stops loudly (see src/main.ts).
 */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}
