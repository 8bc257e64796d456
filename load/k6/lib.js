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

/** @param {string} name @param {number} fallback @param {number} max */
export function int(name, fallback, max) {
  const v = Number(__ENV[name] || fallback);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`${name} must be 1..${max}`);
  return v;
}

/** @param {string} name @param {number} fallback */
export function share(name, fallback) {
  const v = Number(__ENV[name] || fallback);
  if (!(v >= 0 && v <= 1)) throw new Error(`${name} must be 0..1`);
  return v;
}

/**
 * An HS256 token, as the engine expects: sub = user, optional roles, and an expiry (at most
 * 24 h ahead; 6 h here).
 * @param {string} sub @param {string[]} [roles]
 */
export function mint(sub, roles) {
  if (!SECRET) throw new Error('set AUTH_JWT_SECRET to the engine secret');
  const now = Math.floor(Date.now() / 1000);
  const header = encoding.b64encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), 'rawurl');
  const payload = encoding.b64encode(JSON.stringify({ sub, roles: roles || [], iat: now, exp: now + 6 * 3600 }), 'rawurl');
  const signature = crypto.hmac('sha256', SECRET, `${header}.${payload}`, 'base64rawurl');
  return `${header}.${payload}.${signature}`;
}

/** @param {string} amount */
export function usd(amount) {
  return { currency_code: 'USD', amount };
}

/** @param {number} cents */
export function money(cents) {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

// The contract is loaded from the .proto files once per VU, in the init context (no
// reflection call per VU). REFLECT=1 asks the gateway's reflection instead (no files needed).
const REFLECT = __ENV.REFLECT === '1';
const client = new grpc.Client();
if (!REFLECT) client.load([__ENV.PROTO_DIR || '../../proto'], 'escrow/v1/milestone.proto', 'escrow/v1/account.proto');
let connected = false;

function ensureConnected() {
  if (!connected) {
    client.connect(TARGET, { plaintext: true, reflect: REFLECT, timeout: '10s' });
    connected = true;
  }
}

/**
 * A blocking unary call.
 * @param {string} method @param {string} token @param {object} request
 */
export function call(method, token, request) {
  ensureConnected();
  return client.invoke(method, request, { metadata: { authorization: `Bearer ${token}` }, timeout: '20s' });
}

/**
 * A unary call that does not block: several sent with Promise.all are in flight at once.
 * @param {string} method @param {string} token @param {object} request
 */
export function callAsync(method, token, request) {
  ensureConnected();
  return client.asyncInvoke(method, request, { metadata: { authorization: `Bearer ${token}` }, timeout: '20s' });
}

export function close() {
  if (connected) client.close();
  connected = false;
}

export const OK = grpc.StatusOK;

/** @type {Record<number, string>} */
const NAMES = {
  [grpc.StatusOK]: 'OK',
  [grpc.StatusCanceled]: 'CANCELLED',
  [grpc.StatusUnknown]: 'UNKNOWN',
  [grpc.StatusInvalidArgument]: 'INVALID_ARGUMENT',
  [grpc.StatusDeadlineExceeded]: 'DEADLINE_EXCEEDED',
  [grpc.StatusNotFound]: 'NOT_FOUND',
  [grpc.StatusAlreadyExists]: 'ALREADY_EXISTS',
  [grpc.StatusPermissionDenied]: 'PERMISSION_DENIED',
  [grpc.StatusResourceExhausted]: 'RESOURCE_EXHAUSTED',
  [grpc.StatusFailedPrecondition]: 'FAILED_PRECONDITION',
  [grpc.StatusAborted]: 'ABORTED',
  [grpc.StatusOutOfRange]: 'OUT_OF_RANGE',
  [grpc.StatusUnimplemented]: 'UNIMPLEMENTED',
  [grpc.StatusInternal]: 'INTERNAL',
  [grpc.StatusUnavailable]: 'UNAVAILABLE',
  [grpc.StatusDataLoss]: 'DATA_LOSS',
  [grpc.StatusUnauthenticated]: 'UNAUTHENTICATED',
};

/**
 * The status name of a response, e.g. FAILED_PRECONDITION.
 * @param {{ status: number }} res
 */
export function statusName(res) {
  return NAMES[res.status] || `CODE_${res.status}`;
}
