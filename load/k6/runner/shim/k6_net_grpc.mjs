// k6/net/grpc: Client (load, connect, invoke, asyncInvoke, close) and the status codes. The
// calls are made by the runner's main thread on grpc-js; invoke blocks this VU like k6's.
import { requestAsync, requestSync } from './runtime.mjs';

export const StatusOK = 0;
export const StatusCanceled = 1;
export const StatusUnknown = 2;
export const StatusInvalidArgument = 3;
export const StatusDeadlineExceeded = 4;
export const StatusNotFound = 5;
export const StatusAlreadyExists = 6;
export const StatusPermissionDenied = 7;
export const StatusResourceExhausted = 8;
export const StatusFailedPrecondition = 9;
export const StatusAborted = 10;
export const StatusOutOfRange = 11;
export const StatusUnimplemented = 12;
export const StatusInternal = 13;
export const StatusUnavailable = 14;
export const StatusDataLoss = 15;
export const StatusUnauthenticated = 16;

let clients = 0;
export class Client {
  constructor() {
    this.id = ++clients;
    this.protos = null;
    this.connected = false;
  }
  load(importPaths, ...files) {
    this.protos = { importPaths, files };
  }
  connect(address, params = {}) {
    const r = requestSync('connect', { client: this.id, address, params, protos: this.protos });
    if (r.error) throw new Error(r.error);
    this.connected = true;
  }
  invoke(url, request, params = {}) {
    if (!this.connected) throw new Error('k6 runner shim: invoke before connect');
    return requestSync('invoke', { client: this.id, url, request, params });
  }
  asyncInvoke(url, request, params = {}) {
    if (!this.connected) return Promise.reject(new Error('k6 runner shim: asyncInvoke before connect'));
    return requestAsync('invoke', { client: this.id, url, request, params });
  }
  close() {
    if (this.connected) requestSync('close', { client: this.id });
    this.connected = false;
  }
}

export default {
  Client,
  StatusOK,
  StatusCanceled,
  StatusUnknown,
  StatusInvalidArgument,
  StatusDeadlineExceeded,
  StatusNotFound,
  StatusAlreadyExists,
  StatusPermissionDenied,
  StatusResourceExhausted,
  StatusFailedPrecondition,
  StatusAborted,
  StatusOutOfRange,
  StatusUnimplemented,
  StatusInternal,
  StatusUnavailable,
  StatusDataLoss,
  StatusUnauthenticated,
};
