/**
 * A test aid, not k6: runs the k6 scripts of load/k6 where k6 cannot be installed, so CI can
 * execute them end to end. `npx tsx load/k6/runner/run.ts SCRIPT [-e K=V ...] [--out json=FILE]`.
 *
 * It implements on grpc-js just the subset of k6 the scripts import (k6 sleep/check/group,
 * k6/net/grpc Client load/connect/invoke/asyncInvoke/close and the status codes, k6/execution,
 * k6/crypto hmac, k6/encoding b64encode/b64decode, k6/metrics Counter/Rate/Trend/Gauge), the
 * executors they use (per-vu-iterations, shared-iterations, constant-arrival-rate), setup and
 * teardown, thresholds (count, rate, avg, min, max, med, p(N), with tag filters such as
 * `name{scenario:mixed}`), a summary, and k6's `--out json` lines. Each VU is a worker thread
 * whose blocking calls (invoke, sleep) wait on Atomics while this thread does the I/O, as in
 * k6. Users run real k6 (see docs/load-testing.md); exit codes follow k6: 99 when a threshold fails,
 * 107 when the script throws.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { percentile } from '../../stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_PROTOS = resolve(HERE, '../../../proto');

interface Sample {
  metric: string;
  type: 'counter' | 'rate' | 'trend' | 'gauge';
  value: number;
  tags: Record<string, string>;
  time: number;
}

function parseArgs(argv: string[]) {
  const env: Record<string, string> = {};
  let script = '';
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-e' || a === '--env') {
      const [k, ...v] = argv[++i]!.split('=');
      env[k!] = v.join('=');
    } else if (a === '--out') {
      const v = argv[++i]!;
      if (!v.startsWith('json=')) throw new Error('only --out json=FILE is supported');
      out = v.slice(5);
    } else if (a === 'run') continue;
    else script = a;
  }
  if (!script) throw new Error('usage: run.ts SCRIPT [-e K=V ...] [--out json=FILE]');
  return { script: resolve(script), env, out };
}

export function durationMs(d: string | number | undefined, fallback: number): number {
  if (d === undefined) return fallback;
  if (typeof d === 'number') return d;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m: RegExpExecArray | null;
  let matched = '';
  while ((m = re.exec(d))) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    matched += m[0];
  }
  if (matched !== d) throw new Error(`cannot read the duration ${d}`);
  return total;
}

/** One thread per VU, with its port for blocking requests and its wake-up flag. */
class Vu {
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly flag = new SharedArrayBuffer(4);
  private waiting: ((m: { type: string; [k: string]: unknown }) => void) | null = null;
  scenario = 'setup';
  ready: Promise<void>;

  constructor(
    readonly id: number,
    script: string,
    env: Record<string, string>,
    private readonly runner: Runner,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(new URL('./vu.mjs', import.meta.url), {
      workerData: { script: pathToFileURL(script).href, env, vu: id, port: port2, flag: this.flag },
      transferList: [port2],
    });
    this.port.on('message', (m: { id: number; op: string; body: any }) => void this.runner.request(this, m));
    this.ready = new Promise((ok, fail) => {
      this.worker.once('error', fail);
      const first = (m: { type: string; error?: string }) => {
        if (m.type === 'ready') ok();
        else fail(new Error(m.error ?? 'the VU failed to start'));
      };
      this.worker.once('message', first);
    });
    this.worker.on('message', (m) => {
      if (m.type === 'sample') runner.samples.push(m.body as Sample);
      else if (m.type !== 'ready' && this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(m);
      }
    });
  }

  ask(message: object): Promise<{ type: string; [k: string]: unknown }> {
    return new Promise((ok) => {
      this.waiting = ok;
      this.worker.postMessage(message);
    });
  }

  answer(id: number, result: unknown): void {
    this.port.postMessage({ id, result });
    const signal = new Int32Array(this.flag);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  }

  async stop(): Promise<void> {
    this.port.close();
    await this.worker.terminate();
  }
}

interface Channel {
  client: grpc.Client;
  services: Map<string, grpc.ServiceClientConstructor>;
  pkg: grpc.GrpcObject;
}

class Runner {
  readonly samples: Sample[] = [];
  private readonly channels = new Map<string, Channel>();
  errors: string[] = [];

  constructor(private readonly scriptDir: string) {}

  async request(vu: Vu, m: { id: number; op: string; body: any }): Promise<void> {
    try {
      if (m.op === 'connect') vu.answer(m.id, this.connect(vu, m.body));
      else if (m.op === 'close') {
        this.channels.get(`${vu.id}:${m.body.client}`)?.client.close();
        this.channels.delete(`${vu.id}:${m.body.client}`);
        vu.answer(m.id, {});
      } else if (m.op === 'invoke') vu.answer(m.id, await this.invoke(vu, m.body));
    } catch (err) {
      vu.answer(m.id, { error: String(err), status: 2, message: null, headers: {}, trailers: {} });
    }
  }

  private connect(
    vu: Vu,
    b: { client: number; address: string; params: { reflect?: boolean }; protos: { importPaths: string[]; files: string[] } | null },
  ) {
    // Reflection is not spoken here: a reflecting client gets the repository's own contract.
    const protos = b.protos ?? {
      importPaths: [REPO_PROTOS],
      files: ['escrow/v1/milestone.proto', 'escrow/v1/account.proto', 'escrow/v1/review.proto'],
    };
    const includeDirs = protos.importPaths.map((p) => resolve(this.scriptDir, p));
    const definition = protoLoader.loadSync(protos.files, {
      includeDirs,
      keepCase: true,
      enums: String,
      longs: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition);
    const client = new grpc.Client(b.address, grpc.credentials.createInsecure());
    this.channels.set(`${vu.id}:${b.client}`, { client, services: new Map(), pkg });
    return {};
  }

  private async invoke(
    vu: Vu,
    b: { client: number; url: string; request: object; params: { metadata?: Record<string, string>; timeout?: string | number } },
  ) {
    const channel = this.channels.get(`${vu.id}:${b.client}`);
    if (!channel) throw new Error('not connected');
    const [service, method] = b.url.replace(/^\//, '').split('/') as [string, string];
    let ctor = channel.services.get(service);
    if (!ctor) {
      ctor = service.split('.').reduce<any>((o, k) => o?.[k], channel.pkg) as grpc.ServiceClientConstructor | undefined;
      if (!ctor?.service) throw new Error(`unknown service ${service}`);
      channel.services.set(service, ctor);
    }
    const def = ctor.service[method];
    if (!def) throw new Error(`unknown method ${b.url}`);
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(b.params.metadata ?? {})) md.set(k, v);
    const started = performance.now();
    const timeout = durationMs(b.params.timeout, 60_000);
    const result = await new Promise<{ status: number; message: unknown; headers: object; trailers: object; error: unknown }>((ok) => {
      channel.client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        b.request,
        md,
        { deadline: Date.now() + timeout },
        (err: grpc.ServiceError | null, res?: unknown) => {
          if (!err) return ok({ status: 0, message: res ?? null, headers: {}, trailers: {}, error: null });
          ok({
            status: err.code,
            message: null,
            headers: {},
            trailers: {},
            error: { code: err.code, message: err.details, details: errorDetails(err) },
          });
        },
      );
    });
    this.samples.push({
      metric: 'grpc_req_duration',
      type: 'trend',
      value: performance.now() - started,
      tags: { scenario: vu.scenario, method: b.url, status: String(result.status) },
      time: Date.now(),
    });
    return result;
  }

  close(): void {
    for (const c of this.channels.values()) c.client.close();
  }
}

/** The google.rpc.ErrorInfo of a refusal, decoded as k6 shows status details: [{ reason, metadata }]. */
function errorDetails(err: grpc.ServiceError): object[] {
  const raw = err.metadata?.get('grpc-status-details-bin')?.[0];
  if (!raw) return [];
  try {
    // Lazily, to keep the runner's own start quick.
    const { errorInfoOf } = requireStatus();
    const info = errorInfoOf(err);
    return info ? [{ reason: info.reason, metadata: info.metadata }] : [];
  } catch {
    return [];
  }
}
let statusModule: { errorInfoOf: (e: grpc.ServiceError) => { reason: string; metadata: Record<string, string> } | null } | null = null;
function requireStatus() {
  if (!statusModule) throw new Error('status decoder not loaded');
  return statusModule;
}

interface Scenario {
  executor: string;
  vus?: number;
  iterations?: number;
  maxDuration?: string;
  rate?: number;
  timeUnit?: string;
  duration?: string;
  preAllocatedVUs?: number;
  maxVUs?: number;
  exec?: string;
}

async function runScenario(
  name: string,
  s: Scenario,
  vus: Vu[],
  data: unknown,
  counters: { iterations: number; dropped: number; failed: number },
  log: (m: string) => void,
): Promise<void> {
  const iterate = async (vu: Vu, iterationInScenario: number) => {
    vu.scenario = name;
    const r = await vu.ask({
      type: 'iterate',
      exec: s.exec,
      data,
      state: {
        scenario: name,
        idInTest: vu.id,
        iterationInScenario,
        iterationInTest: counters.iterations++,
        iterationInInstance: iterationInScenario,
      },
    });
    if (r.type === 'failed') {
      counters.failed++;
      log(`iteration failed: ${String(r.error).split('\n')[0]}`);
    }
  };
  if (s.executor === 'per-vu-iterations' || s.executor === 'shared-iterations') {
    const until = Date.now() + durationMs(s.maxDuration, 600_000);
    const total = s.executor === 'per-vu-iterations' ? (s.iterations ?? 1) : (s.iterations ?? 1);
    let shared = 0;
    await Promise.all(
      vus.map(async (vu) => {
        for (let i = 0; Date.now() < until; i++) {
          const n = s.executor === 'per-vu-iterations' ? i : shared++;
          if (n >= total) return;
          await iterate(vu, n);
        }
      }),
    );
    return;
  }
  if (s.executor === 'constant-arrival-rate') {
    const every = durationMs(s.timeUnit ?? '1s', 1000) / (s.rate ?? 1);
    const until = Date.now() + durationMs(s.duration, 60_000);
    const free = [...vus];
    const running = new Set<Promise<void>>();
    let n = 0;
    for (let next = Date.now(); next < until; next += every) {
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const vu = free.pop();
      if (!vu) {
        counters.dropped++;
        continue;
      }
      const p = iterate(vu, n++).finally(() => {
        free.push(vu);
        running.delete(p);
      });
      running.add(p);
    }
    await Promise.all(running);
    return;
  }
  throw new Error(`executor ${s.executor} is not implemented by the runner shim`);
}

/** Aggregates of the samples of a metric (and tag filter) as thresholds read them. */
function aggregate(samples: Sample[], selector: string) {
  const m = /^([\w.]+)(?:\{(.*)\})?$/.exec(selector);
  if (!m) throw new Error(`cannot read the threshold metric ${selector}`);
  const filters = (m[2] ?? '')
    .split(',')
    .filter(Boolean)
    .map((f) => f.split(':').map((x) => x.trim()) as [string, string]);
  const mine = samples.filter((s) => s.metric === m[1] && filters.every(([k, v]) => s.tags[k] === v));
  const values = mine.map((s) => s.value).sort((a, b) => a - b);
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    count: sum,
    rate: values.length ? values.filter((v) => v !== 0).length / values.length : 0,
    avg: values.length ? sum / values.length : 0,
    min: values[0] ?? 0,
    max: values[values.length - 1] ?? 0,
    med: percentile(values, 50),
    p: (q: number) => percentile(values, q),
    samples: values.length,
  };
}

export function evaluate(samples: Sample[], selector: string, expression: string): { ok: boolean; actual: number } {
  const e = /^\s*(count|rate|avg|min|max|med|p\((\d+(?:\.\d+)?)\))\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expression);
  if (!e) throw new Error(`cannot read the threshold ${expression}`);
  const a = aggregate(samples, selector);
  const actual = e[2] ? a.p(Number(e[2])) : (a[e[1] as 'count' | 'rate' | 'avg' | 'min' | 'max' | 'med'] as number);
  const limit = Number(e[4]);
  const ok = {
    '<': actual < limit,
    '<=': actual <= limit,
    '>': actual > limit,
    '>=': actual >= limit,
    '==': actual === limit,
    '!=': actual !== limit,
  }[e[3] as '<'];
  return { ok, actual };
}

async function main(): Promise<number> {
  const { script, env: given, out } = parseArgs(process.argv.slice(2));
  statusModule = await import('../../../src/gateway/status.js');
  const env = { ...(process.env as Record<string, string>), ...given };
  const runner = new Runner(dirname(script));
  const log = (m: string) => console.error(`[k6-shim] ${m}`);
  const vus: Vu[] = [];
  const spawn = async (id: number) => {
    const vu = new Vu(id, script, env, runner);
    vus.push(vu);
    await vu.ready;
    return vu;
  };
  let code = 0;
  try {
    const init = await spawn(0);
    const options = ((await init.ask({ type: 'options' })).options ?? {}) as {
      scenarios?: Record<string, Scenario>;
      thresholds?: Record<string, string[]>;
      vus?: number;
      iterations?: number;
      setupTimeout?: string;
    };
    const scenarios = options.scenarios ?? {
      default: { executor: 'per-vu-iterations', vus: options.vus ?? 1, iterations: options.iterations ?? 1 },
    };
    log(`setup`);
    const setup = await init.ask({ type: 'setup' });
    if (setup.type === 'failed') {
      log(`setup threw: ${setup.error}`);
      return 107;
    }
    const counters = { iterations: 0, dropped: 0, failed: 0 };
    const cap = Number(env.K6_SHIM_MAX_VUS ?? 64);
    let nextVu = 1;
    for (const [name, s] of Object.entries(scenarios)) {
      const n = Math.min(cap, s.vus ?? s.preAllocatedVUs ?? 1);
      log(`scenario ${name}: ${s.executor}, ${n} VUs`);
      const mine = await Promise.all(Array.from({ length: n }, () => spawn(nextVu++)));
      await runScenario(name, s, mine, setup.data, counters, log);
      for (const vu of mine) await vu.stop();
    }
    log('teardown');
    const down = await init.ask({ type: 'teardown', data: setup.data });
    if (down.type === 'failed') {
      log(`teardown threw: ${down.error}`);
      code = 107;
    }
    // The summary: checks, thresholds, counters.
    const checks = aggregate(runner.samples, 'checks');
    console.log(`checks: ${Math.round(checks.rate * checks.samples)} of ${checks.samples} passed`);
    for (const name of [...new Set(runner.samples.filter((s) => s.type === 'counter').map((s) => s.metric))].sort())
      console.log(`${name}: ${aggregate(runner.samples, name).count}`);
    const reqs = aggregate(runner.samples, 'grpc_req_duration');
    console.log(
      `grpc_req_duration: ${reqs.samples} calls, p50 ${reqs.med.toFixed(1)} ms, p95 ${reqs.p(95).toFixed(1)} ms, p99 ${reqs.p(99).toFixed(1)} ms`,
    );
    console.log(`iterations: ${counters.iterations} (${counters.failed} failed, ${counters.dropped} dropped)`);
    let failed = false;
    for (const [selector, expressions] of Object.entries(options.thresholds ?? {})) {
      for (const expression of expressions) {
        const r = evaluate(runner.samples, selector, expression);
        console.log(`threshold ${r.ok ? 'ok  ' : 'FAIL'} ${selector}: ${expression} (${Number(r.actual.toFixed(3))})`);
        failed ||= !r.ok;
      }
    }
    if (out)
      writeFileSync(
        out,
        runner.samples
          .map((s) =>
            JSON.stringify({
              type: 'Point',
              metric: s.metric,
              data: { time: new Date(s.time).toISOString(), value: s.value, tags: s.tags },
            }),
          )
          .join('\n') + '\n',
      );
    if (code === 0 && failed) code = 99;
    if (code === 0 && counters.failed > 0) code = 1;
    return code;
  } finally {
    for (const vu of vus) await vu.stop().catch(() => {});
    runner.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(107);
    },
  );
}
