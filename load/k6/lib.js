// Shared by the k6 scripts: parameters, tokens, and a gRPC client of the engine.
// Parameters have the same names and defaults as the Node race harness (load/harness.ts).
import grpc from 'k6/net/grpc';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

export const TARGET = __ENV.TARGET || '127.0.0.1:50051';
export const SECRET = __ENV.AUTH_JWT_SECRET || '';
/**
 * Makes user ids and keys unique to a run. Init code runs once per VU (and for setup and
 * teardown), so a prefix made there would differ between them: setup makes it once and
 * passes it on in its data.
 */
export function newPrefix() {
  return __ENV.PREFIX || `k6${Date.now().toString(36)}`;
}

export function int(name, fallback, max) {
  const v = Number(__ENV[name] || fallback);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`${name} must be 1..${max}`);
  return v;
}

/** An HS256 token, as the engine expects: sub = user, optional roles. */
export function mint(sub, roles) {
  if (!SECRET) throw new Error('set AUTH_JWT_SECRET to the engine secret');
  const now = Math.floor(Date.now() / 1000);
  const header = encoding.b64encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), 'rawurl');
  const payload = encoding.b64encode(JSON.stringify({ sub, roles: roles || [], iat: now, exp: now + 6 * 3600 }), 'rawurl');
  const signature = crypto.hmac('sha256', SECRET, `${header}.${payload}`, 'base64rawurl');
  return `${header}.${payload}.${signature}`;
}

export function usd(amount) {
  return { currency_code: 'USD', amount };
}

/** One connection per VU; the gateway serves reflection, so no .proto files are loaded. */
const client = new grpc.Client();
let connected = false;

export function call(method, token, request) {
  if (!connected) {
    client.connect(TARGET, { plaintext: true, reflect: true, timeout: '10s' });
    connected = true;
  }
  return client.invoke(method, request, { metadata: { authorization: `Bearer ${token}` }, timeout: '20s' });
}

export function close() {
  if (connected) client.close();
  connected = false;
}

export const OK = grpc.StatusOK;

/** The status name of a response, e.g. FAILED_PRECONDITION. */
export function statusName(res) {
  const names = {
    [grpc.StatusOK]: 'OK', [grpc.StatusInvalidArgument]: 'INVALID_ARGUMENT', [grpc.StatusFailedPrecondition]: 'FAILED_PRECONDITION',
    [grpc.StatusNotFound]: 'NOT_FOUND', [grpc.StatusPermissionDenied]: 'PERMISSION_DENIED', [grpc.StatusUnauthenticated]: 'UNAUTHENTICATED',
    [grpc.StatusAborted]: 'ABORTED', [grpc.StatusResourceExhausted]: 'RESOURCE_EXHAUSTED', [grpc.StatusUnavailable]: 'UNAVAILABLE',
    [grpc.StatusDeadlineExceeded]: 'DEADLINE_EXCEEDED',
  };
  return names[res.status] || `CODE_${res.status}`;
}
