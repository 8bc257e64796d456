// The VU thread's side of the runner shim: blocking calls to the main thread (which does the
// I/O) over a MessagePort, woken with Atomics; metric samples posted as they happen, on the
// channel that also carries an iteration's end, so none can arrive after it.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';

const { port, flag } = workerData;
const signal = new Int32Array(flag);
let nextId = 1;
const pending = new Map();
port.on('message', (m) => settle(m));
port.unref();

function settle(m) {
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  p(m.result);
}

/** Sends a request to the main thread and blocks this VU until its answer. */
export function requestSync(op, body) {
  const id = nextId++;
  let result;
  let done = false;
  pending.set(id, (r) => {
    result = r;
    done = true;
  });
  Atomics.store(signal, 0, 0);
  port.postMessage({ id, op, body });
  while (!done) {
    const m = receiveMessageOnPort(port);
    if (m) {
      settle(m.message);
      continue;
    }
    Atomics.wait(signal, 0, 0, 1000);
    Atomics.store(signal, 0, 0);
  }
  return result;
}

/** Sends a request to the main thread; the promise settles when this VU's event loop runs. */
export function requestAsync(op, body) {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    port.postMessage({ id, op, body });
  });
}

/** One metric sample, tagged with the VU's current scenario. */
export function sample(metric, type, value, tags = {}) {
  parentPort.postMessage({ type: 'sample', body: { metric, type, value, tags: { scenario: state.scenario, ...tags }, time: Date.now() } });
}

/** What k6/execution shows, set by the VU before each iteration. */
export const state = { scenario: 'setup', idInTest: 0, iterationInScenario: 0, iterationInTest: 0, iterationInInstance: 0 };

export function blockFor(ms) {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
