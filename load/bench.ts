/**
 * The benchmark: `npm run bench -- [options]`. Measures in one run, on this machine:
 *   - the ceiling: a bare grpc-js server of the same proto (load/echo-server.ts), driven by the
 *     same client code at the same concurrency;
 *   - the engine (one gateway and one worker process) on the race and the mixed workloads,
 *     and the mixed workload's p99 at 70% of its peak rate, and the ledger lag;
 *   - the locking baseline (load/baseline/server.ts: one Postgres transaction per command);
 *   - gateway memory: RSS with many milestones touched, and bytes per resident actor.
 * Prints a human summary and one JSON line. Needs DATABASE_URL and NATS_URL.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { freePort } from '../src/dev/embedded.js';
import { natsAuthFrom, natsOptions } from '../src/config.js';
import { EventLog } from '../src/events/log.js';
import { names } from '../src/events/names.js';
import { runAudit } from '../src/ledger/auditor.js';
import { createPool } from '../src/ledger/db.js';
import { EscrowClient } from '../src/client.js';
import { createOne, runMixedClosed, runMixedOpen, seedMixed, type MixedResult } from './mixed.js';
import { dropNamespace, runNamespace } from '../tools/namespace.js';
import { EngineProcess, LOAD_TOOL_LIMITS, portOpen, sleep } from '../tools/processes.js';
import { runRace, type RaceResult } from './race.js';
import { runBounded, summarize } from './stats.js';
import { writeReport, type ReportRow } from './report.js';
import { MILESTONE } from '../src/app/milestones.js';
import { Registry } from '../src/runtime/registry.js';
import { currentNatsServer, NatsCluster } from '../tools/nats-cluster.js';

const { values: a } = parseArgs({
  options: {
    'duration-s': { type: 'string', default: '15' },
    concurrency: { type: 'string', default: '64' },
    milestones: { type: 'string', default: '300' },
    contenders: { type: 'string', default: '20' },
    touch: { type: 'string', default: '100000' },
    'actors-max': { type: 'string', default: '10000' },
    namespace: { type: 'string' },
    'grpc-port-base': { type: 'string' },
    report: { type: 'string' },
    // The race and the mixed workload again on a three-node nats-server 2.10+ cluster (R3, sync_interval always).
    cluster: { type: 'boolean', default: false },
  },
});
const durationMs = Math.min(120, Number(a['duration-s'])) * 1000;
const concurrency = Math.min(1000, Number(a.concurrency));
const milestones = Math.min(10_000, Number(a.milestones));
const contenders = Math.min(100, Number(a.contenders));
const touch = Math.min(200_000, Number(a.touch));
const actorsMax = Number(a['actors-max']);
const databaseUrl = process.env.DATABASE_URL;
const natsUrl = process.env.NATS_URL;
if (!databaseUrl || !natsUrl) {
  console.error('npm run bench needs DATABASE_URL and NATS_URL');
  process.exit(64);
}

const secret = randomBytes(16).toString('hex');
// The run's own namespace (removed after) unless one is given; ports free ones unless a base is given (P, P+1, ...).
const namespace = a.namespace ?? runNamespace('bench');
let nextPort = a['grpc-port-base'] ? Number(a['grpc-port-base']) : null;
const port = async (): Promise<number> => (nextPort === null ? freePort() : nextPort++);
const baselineSchema = `${namespace}_baseline`;
const started: EngineProcess[] = [];
const log = (m: string) => console.error(`[bench] ${m}`);
/** Progress lines of a running workload, every few seconds. */
const progress = (label: string) => (p: { answered: number; elapsedMs: number; errors: Record<string, number> }) =>
  log(
    `${label}: ${p.answered} answered in ${Math.round(p.elapsedMs / 1000)} s (${Math.round((p.answered / Math.max(1, p.elapsedMs)) * 1000)}/s), errors ${JSON.stringify(p.errors)}`,
  );

async function server(script: string, args: string[], env: Record<string, string> = {}): Promise<EngineProcess> {
  // The comparators are plain scripts; EngineProcess only needs a role name to wait on its port.
  const p = new EngineProcess('gateway', { ...env, GRPC_ADDRESS: args[0]! });
  const { spawn } = await import('node:child_process');
  p.child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 300 && !(await portOpen(Number(args[0]!.split(':')[1]))); i++) await sleep(100);
  started.push(p);
  return p;
}

async function engine(role: 'gateway' | 'worker', extra: Record<string, string> = {}): Promise<EngineProcess> {
  const p = await EngineProcess.start(role, {
    DATABASE_URL: databaseUrl!,
    NATS_URL: natsUrl!,
    AUTH_JWT_SECRET: secret,
    ESCROW_NAMESPACE: namespace,
    LOG_LEVEL: 'warn',
    ESCROW_MAILBOX_MAX: '10000',
    ...LOAD_TOOL_LIMITS,
    GRPC_ADDRESS: `127.0.0.1:${await port()}`,
    ...extra,
  });
  started.push(p);
  return p;
}

async function race(address: string, label: string): Promise<RaceResult> {
  const c = new EscrowClient(address, secret);
  try {
    log(`${label}: race, ${milestones} milestones x ${contenders} contenders, concurrency ${concurrency}`);
    return await runRace({
      clients: [c],
      milestones,
      contenders,
      amount: '10.00',
      prefix: `${label}${randomBytes(2).toString('hex')}`,
      concurrency,
      onProgress: (p) =>
        log(`${label} race: ${p.answered}/${p.sent} answered in ${Math.round(p.elapsedMs / 1000)} s ${JSON.stringify(p.byCode)}`),
    });
  } finally {
    c.close();
  }
}

/** A closed-loop workload over `users` funded employers: the mixed one, or creates only (the figure of creates alone). */
async function closedLoop(address: string, label: string, what: 'mixed' | 'creates'): Promise<MixedResult> {
  const c = new EscrowClient(address, secret);
  try {
    const p = await seedMixed([c], what === 'mixed' ? 50 : 32);
    log(
      `${label}: ${what === 'mixed' ? 'mixed workload' : 'creates only'}, closed loop, concurrency ${concurrency}, ${durationMs / 1000} s`,
    );
    return await runMixedClosed([c], p, concurrency, durationMs, progress(`${label} ${what}`), what === 'mixed' ? undefined : createOne);
  } finally {
    c.close();
  }
}
const mixed = (address: string, label: string) => closedLoop(address, label, 'mixed');
const creates = (address: string, label: string) => closedLoop(address, label, 'creates');

async function main() {
  // 1. The ceiling.
  const echoAddress = `127.0.0.1:${await port()}`;
  const echo = await server('load/echo-server.ts', [echoAddress]);
  const ceilingRace = await race(echoAddress, 'echo');
  const ceilingMixed = await mixed(echoAddress, 'echo');
  await echo.stop();

  // 2. The engine: one worker, one gateway.
  await engine('worker');
  const gw = await engine('gateway');
  const engineRace = await race(gw.address, 'engine');
  const engineMixed = await mixed(gw.address, 'engine');
  const engineCreates = await creates(gw.address, 'engine');
  const c = new EscrowClient(gw.address, secret);
  const p = await seedMixed([c], 50);
  const rate70 = Math.max(1, Math.round(engineMixed.opsPerSecond * 0.7));
  log(`engine: mixed workload, open loop at ${rate70}/s (70% of peak), ${durationMs / 1000} s`);
  const engineAt70 = await runMixedOpen([c], p, rate70, durationMs, progress('engine mixed at 70%'));
  c.close();

  // Ledger lag and the auditor's verdict on everything the engine did.
  const nc = await connect(natsOptions(natsUrl!, natsAuthFrom()));
  const elog = await EventLog.open(nc, names(namespace), { duplicateWindowMs: 120_000, signingSecret: secret, allowUnsafeReplicas: true }); // read-only
  const pool = createPool(databaseUrl!, namespace, 2);
  const audit = await runAudit(elog, pool, 60_000);
  const { rows } = await pool.query<{ event_id: string; at: string }>(
    'SELECT event_id::text, (extract(epoch FROM created_at) * 1000)::text AS at FROM postings WHERE event_id = ANY($1::uuid[])',
    [engineRace.wins.map((w) => w.eventId)],
  );
  const written = new Map(rows.map((r) => [r.event_id, Number(r.at)]));
  // Negative: the posting was written before the answer reached the client.
  const lag = summarize(engineRace.wins.flatMap((w) => (written.has(w.eventId) ? [written.get(w.eventId)! - w.ackedAt] : [])));
  // Real milestones for the memory figures: what the workloads made, topped up to 20,000.
  const made = Number((await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM milestones')).rows[0]!.n);
  if (made < HEAP_MILESTONES) {
    log(`memory: creating ${HEAP_MILESTONES - made} more milestones`);
    const cc = new EscrowClient(gw.address, secret);
    const seed = await seedMixed([cc], 32);
    await runBounded(
      Array.from(
        { length: HEAP_MILESTONES - made },
        (_, i) => () =>
          cc
            .m('CreateMilestone', `${seed.prefix}-emp-${i % 32}`, {
              project_id: `${seed.prefix}-p-${i % 32}`,
              freelancer_id: `${seed.prefix}-fl-${i % 32}`,
              amount: { currency_code: 'USD', amount: '1.00' },
              idempotency_key: `heap-${i}`,
            })
            .then(
              () => {},
              () => {},
            ),
      ),
      64,
    );
    cc.close();
  }
  const realIds = (
    await pool.query<{ id: string; employer_id: string }>(
      `SELECT milestone_id::text AS id, employer_id FROM milestones LIMIT ${HEAP_MILESTONES}`,
    )
  ).rows;
  // The heap of resident actors, measured here (this process runs with --expose-gc): load each
  // real milestone into an actor, collect garbage before and after, divide.
  const heap = await actorHeap(
    elog,
    realIds.map((r) => r.id),
  );
  await pool.end();
  await nc.close();
  await gw.stop();

  // 2b. The same engine on a replicated log, what replication and fsync cost (--cluster).
  const onCluster = a.cluster ? await clusterRun() : null;

  // 3. Memory: a gateway with the default actor cap touching `touch` milestones (most of them
  // unknown ids: every touch still makes and loads an actor), then one with no effective cap
  // touching the real milestones, for the bytes per resident actor.
  const memCapped = await engine('gateway', { ESCROW_ACTORS_MAX: String(actorsMax), ESCROW_ACTOR_IDLE_MS: '3600000' });
  const memory = await touchMilestones(memCapped, realIds, touch);
  await memCapped.stop();
  const memUncapped = await engine('gateway', { ESCROW_ACTORS_MAX: '10000000', ESCROW_ACTOR_IDLE_MS: '3600000' });
  const perActor = await touchMilestones(memUncapped, realIds, realIds.length);
  await memUncapped.stop();

  // 4. The locking baseline.
  const baseAddress = `127.0.0.1:${await port()}`;
  const base = await server('load/baseline/server.ts', [baseAddress, baselineSchema, secret], { DATABASE_URL: databaseUrl! });
  const baselineRace = await race(baseAddress, 'baseline');
  const baselineMixed = await mixed(baseAddress, 'baseline');
  const baselineCreates = await creates(baseAddress, 'baseline');
  await base.stop();

  const ratio = (x: number, y: number) => Math.round((x / Math.max(1, y)) * 100) / 100;
  const result = {
    machine: { cores: (await import('node:os')).cpus().length, node: process.version },
    settings: { durationS: durationMs / 1000, concurrency, milestones, contenders, touch, actorsMax },
    ceiling: {
      raceCommandsPerSecond: ceilingRace.commandsPerSecond,
      raceP99Ms: ceilingRace.latencyMs.p99,
      mixedOpsPerSecond: ceilingMixed.opsPerSecond,
      mixedP99Ms: ceilingMixed.latencyMs.p99,
    },
    engine: {
      raceCommandsPerSecond: engineRace.commandsPerSecond,
      raceLatencyMs: engineRace.latencyMs,
      raceWinners: engineRace.winnersHistogram,
      mixedPeakOpsPerSecond: engineMixed.opsPerSecond,
      mixedLatencyMs: engineMixed.latencyMs,
      mixedErrors: engineMixed.errors,
      createsPerSecond: engineCreates.opsPerSecond,
      createLatencyMs: engineCreates.latencyMs,
      createErrors: engineCreates.errors,
      at70PercentOfPeak: { rate: rate70, latencyMs: engineAt70.latencyMs, errors: engineAt70.errors },
      ledgerLagMs: lag,
      audit: audit.ok ? 'pass' : 'fail',
    },
    baseline: {
      raceCommandsPerSecond: baselineRace.commandsPerSecond,
      raceLatencyMs: baselineRace.latencyMs,
      raceWinners: baselineRace.winnersHistogram,
      mixedOpsPerSecond: baselineMixed.opsPerSecond,
      mixedLatencyMs: baselineMixed.latencyMs,
      createsPerSecond: baselineCreates.opsPerSecond,
      createLatencyMs: baselineCreates.latencyMs,
    },
    ratios: {
      engineOverCeilingRace: ratio(engineRace.commandsPerSecond, ceilingRace.commandsPerSecond),
      engineOverBaselineRace: ratio(engineRace.commandsPerSecond, baselineRace.commandsPerSecond),
      engineOverCeilingMixed: ratio(engineMixed.opsPerSecond, ceilingMixed.opsPerSecond),
      engineOverBaselineMixed: ratio(engineMixed.opsPerSecond, baselineMixed.opsPerSecond),
      engineOverBaselineCreates: ratio(engineCreates.opsPerSecond, baselineCreates.opsPerSecond),
      ...(onCluster
        ? {
            clusterOverSingleRace: ratio(onCluster.race.commandsPerSecond, engineRace.commandsPerSecond),
            clusterOverSingleMixed: ratio(onCluster.mixed.opsPerSecond, engineMixed.opsPerSecond),
          }
        : {}),
    },
    cluster: onCluster
      ? {
          nodes: 3,
          replicas: 3,
          syncInterval: 'always',
          server: onCluster.server,
          raceCommandsPerSecond: onCluster.race.commandsPerSecond,
          raceLatencyMs: onCluster.race.latencyMs,
          raceWinners: onCluster.race.winnersHistogram,
          mixedOpsPerSecond: onCluster.mixed.opsPerSecond,
          mixedLatencyMs: onCluster.mixed.latencyMs,
          mixedErrors: onCluster.mixed.errors,
          audit: onCluster.audit,
        }
      : null,
    memory: {
      touched: memory.touched,
      actorsMax,
      rssIdleMB: mb(memory.rssBefore),
      rssAfterTouchMB: mb(memory.rssAfter),
      residentActorsMeasured: perActor.touched,
      // RSS grows in steps and counts the allocator's slack: a rough figure, not the actors' size.
      rssBytesPerResidentActor: perActor.touched > 0 ? Math.round((perActor.rssAfter - perActor.rssBefore) / perActor.touched) : 0,
      heapActorsMeasured: heap?.actors ?? 0,
      heapBytesPerResidentActor: heap?.bytesPerActor ?? null,
    },
  };
  console.log(`ceiling  race ${result.ceiling.raceCommandsPerSecond}/s  mixed ${result.ceiling.mixedOpsPerSecond}/s`);
  console.log(
    `engine   race ${result.engine.raceCommandsPerSecond}/s (p99 ${engineRace.latencyMs.p99} ms)  mixed ${result.engine.mixedPeakOpsPerSecond}/s (p99 ${engineMixed.latencyMs.p99} ms)  at 70%: p99 ${engineAt70.latencyMs.p99} ms  ledger lag p99 ${lag.p99} ms  audit ${result.engine.audit}`,
  );
  console.log(
    `creates  engine ${engineCreates.opsPerSecond}/s (p99 ${engineCreates.latencyMs.p99} ms, slowest ${engineCreates.latencyMs.max} ms)  baseline ${baselineCreates.opsPerSecond}/s (p99 ${baselineCreates.latencyMs.p99} ms)`,
  );
  console.log(`baseline race ${result.baseline.raceCommandsPerSecond}/s  mixed ${result.baseline.mixedOpsPerSecond}/s`);
  if (onCluster)
    console.log(
      `cluster  race ${onCluster.race.commandsPerSecond}/s (p99 ${onCluster.race.latencyMs.p99} ms)  mixed ${onCluster.mixed.opsPerSecond}/s (p99 ${onCluster.mixed.latencyMs.p99} ms)  audit ${onCluster.audit}  (3 nodes, R3, sync_interval always, nats-server ${onCluster.server})`,
    );
  console.log(`ratios   ${JSON.stringify(result.ratios)}`);
  console.log(`memory   ${JSON.stringify(result.memory)}`);
  if (result.memory.heapBytesPerResidentActor === null)
    console.log('memory   (run with node --expose-gc, as npm run bench does, for the heap figure)');
  console.log(JSON.stringify({ bench: result }));
  if (a.report) {
    const rows: ReportRow[] = [
      {
        workload: 'race',
        system: 'engine',
        perSecond: engineRace.commandsPerSecond,
        p50Ms: engineRace.latencyMs.p50,
        p99Ms: engineRace.latencyMs.p99,
      },
      {
        workload: 'race',
        system: 'baseline',
        perSecond: baselineRace.commandsPerSecond,
        p50Ms: baselineRace.latencyMs.p50,
        p99Ms: baselineRace.latencyMs.p99,
      },
      {
        workload: 'race',
        system: 'ceiling',
        perSecond: ceilingRace.commandsPerSecond,
        p50Ms: ceilingRace.latencyMs.p50,
        p99Ms: ceilingRace.latencyMs.p99,
      },
      {
        workload: 'mixed',
        system: 'engine',
        perSecond: engineMixed.opsPerSecond,
        p50Ms: engineMixed.latencyMs.p50,
        p99Ms: engineMixed.latencyMs.p99,
      },
      {
        workload: 'mixed',
        system: 'baseline',
        perSecond: baselineMixed.opsPerSecond,
        p50Ms: baselineMixed.latencyMs.p50,
        p99Ms: baselineMixed.latencyMs.p99,
      },
      {
        workload: 'mixed',
        system: 'ceiling',
        perSecond: ceilingMixed.opsPerSecond,
        p50Ms: ceilingMixed.latencyMs.p50,
        p99Ms: ceilingMixed.latencyMs.p99,
      },
      {
        workload: 'creates',
        system: 'engine',
        perSecond: engineCreates.opsPerSecond,
        p50Ms: engineCreates.latencyMs.p50,
        p99Ms: engineCreates.latencyMs.p99,
      },
      {
        workload: 'creates',
        system: 'baseline',
        perSecond: baselineCreates.opsPerSecond,
        p50Ms: baselineCreates.latencyMs.p50,
        p99Ms: baselineCreates.latencyMs.p99,
      },
      ...(onCluster
        ? [
            {
              workload: 'race',
              system: 'cluster' as const,
              perSecond: onCluster.race.commandsPerSecond,
              p50Ms: onCluster.race.latencyMs.p50,
              p99Ms: onCluster.race.latencyMs.p99,
            },
            {
              workload: 'mixed',
              system: 'cluster' as const,
              perSecond: onCluster.mixed.opsPerSecond,
              p50Ms: onCluster.mixed.latencyMs.p50,
              p99Ms: onCluster.mixed.latencyMs.p99,
            },
          ]
        : []),
    ];
    const notes = [
      `ratios ${JSON.stringify(result.ratios)}`,
      `ledger lag p99 ${lag.p99} ms (answer -> posting written; negative: written before the answer arrived); audit ${result.engine.audit}`,
      `heap per resident actor after GC ${result.memory.heapBytesPerResidentActor ?? 'n/a'} bytes over ${result.memory.heapActorsMeasured} actors`,
      `machine: ${result.machine.cores} cores, Node ${result.machine.node}; ${result.settings.durationS} s per workload at ${result.settings.concurrency} in flight`,
    ];
    for (const f of writeReport(a.report, result, rows, notes)) log(`wrote ${f}`);
  }
}

const HEAP_MILESTONES = 20_000;

/**
 * One worker and one gateway on a three-node cluster of a current nats-server (the one
 * .ci/run builds, or NATS_SERVER_BIN), the stream at R3 with sync_interval always, in a
 * namespace of their own: the race and the mixed workload, then the auditor.
 */
async function clusterRun() {
  const bin = currentNatsServer();
  if (!bin) {
    log('cluster: skipped, no nats-server 2.10+ (NATS_SERVER_BIN, or .data/nats-2.10 as .ci/run builds it from ../shared/nats)');
    return null;
  }
  const cluster = await NatsCluster.start(bin);
  const ns = `${namespace}_r3`;
  const env = { NATS_URL: cluster.urls, ESCROW_NAMESPACE: ns, ESCROW_STREAM_REPLICAS: '3' };
  const procs: EngineProcess[] = [];
  try {
    procs.push(await engine('worker', env));
    const cgw = await engine('gateway', env);
    procs.push(cgw);
    const r = await race(cgw.address, 'cluster');
    const m = await mixed(cgw.address, 'cluster');
    const cnc = await connect(natsOptions(cluster.urls, natsAuthFrom()));
    const clog = await EventLog.open(cnc, names(ns), { duplicateWindowMs: 120_000, signingSecret: secret, allowUnsafeReplicas: true }); // read-only
    const cpool = createPool(databaseUrl!, ns, 2);
    const verdict = await runAudit(clog, cpool, 60_000);
    await cpool.end();
    const server = cnc.info?.version ?? '?';
    await cnc.close();
    return { race: r, mixed: m, audit: verdict.ok ? 'pass' : 'fail', server };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await cluster.destroy();
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${ns}" CASCADE`).catch(() => {});
    await c.end();
  }
}

/** Heap bytes per resident milestone actor after GC, over real milestones; null without --expose-gc. */
async function actorHeap(elog: EventLog, ids: string[]): Promise<{ actors: number; bytesPerActor: number } | null> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc || ids.length === 0) return null;
  const registry = new Registry({ kind: MILESTONE, log: elog, mailboxMax: 64, actorsMax: ids.length + 1, actorIdleMs: 86_400_000 });
  gc();
  const before = process.memoryUsage().heapUsed;
  await runBounded(
    ids.map(
      (id) => () =>
        registry.read(id).then(
          () => {},
          () => {},
        ),
    ),
    64,
  );
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  const actors = registry.size;
  registry.close();
  return { actors, bytesPerActor: Math.round((after - before) / Math.max(1, actors)) };
}

function mb(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}

/** GetMilestone on `count` milestones: the real ones first, then unknown ids. */
async function touchMilestones(gw: EngineProcess, real: { id: string; employer_id: string }[], count: number) {
  const c = new EscrowClient(gw.address, secret);
  await c.m('ListMilestones', 'warmup', { direction: 'OUTGOING' }).catch(() => {});
  await sleep(1_000);
  const rssBefore = gw.rssBytes();
  log(`memory: touching ${count} milestones on a gateway`);
  const tasks = Array.from({ length: count }, (_, i) => async () => {
    const m = real[i];
    await c.m('GetMilestone', m ? m.employer_id : 'toucher', { milestone_id: m ? m.id : randomUUID() }).catch(() => {});
  });
  await runBounded(tasks, 128);
  await sleep(1_000);
  const rssAfter = gw.rssBytes();
  c.close();
  return { touched: count, rssBefore, rssAfter };
}

try {
  await main();
} finally {
  await Promise.all(started.map((p) => p.stop()));
  if (!a.namespace) await dropNamespace(databaseUrl, natsUrl, namespace).catch(() => {});
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${baselineSchema}" CASCADE`).catch(() => {});
  await c.end();
}
