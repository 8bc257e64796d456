// A VU thread of the k6 runner shim: imports the script (its init context) with k6's modules
// resolved to the shims, then runs what the main thread asks (options, setup, iterations, teardown).
import { register } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

register(new URL('./hooks.mjs', import.meta.url));
globalThis.__ENV = workerData.env;
globalThis.__VU = workerData.vu;
const { state } = await import('./shim/runtime.mjs');
state.idInTest = workerData.vu;
let script;
try {
  script = await import(workerData.script);
} catch (err) {
  parentPort.postMessage({ type: 'error', error: String(err?.stack ?? err) });
  process.exit(1);
}
parentPort.on('message', async (m) => {
  try {
    if (m.type === 'options') parentPort.postMessage({ type: 'options', options: script.options ?? {} });
    else if (m.type === 'setup') {
      state.scenario = 'setup';
      const data = script.setup ? await script.setup() : undefined;
      parentPort.postMessage({ type: 'done', data: data === undefined ? null : JSON.parse(JSON.stringify(data)) });
    } else if (m.type === 'teardown') {
      state.scenario = 'teardown';
      if (script.teardown) await script.teardown(m.data);
      parentPort.postMessage({ type: 'done' });
    } else if (m.type === 'iterate') {
      Object.assign(state, m.state);
      const run = script[m.exec || 'default'];
      await run(m.data);
      parentPort.postMessage({ type: 'done' });
    }
  } catch (err) {
    parentPort.postMessage({ type: 'failed', error: String(err?.stack ?? err) });
  }
});
parentPort.postMessage({ type: 'ready' });
