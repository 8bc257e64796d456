import { Decimal } from 'decimal.js';
import { afterEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { sleep } from '../../tools/processes.js';
import { FaultLoad } from './load.js';
import { PAYMENTS } from '../helpers/client.js';
import { NatsServer, natsCluster, TcpProxy } from './infra.js';
import { phaseMs, Rig, verifyFault } from './rig.js';
import { EngineProcess } from '../../tools/processes.js';
import { freePort } from '../../src/dev/embedded.js';
import { SAFE_REPLICATED_SERVER, versionAtLeast } from '../../src/events/log.js';
import { leaseSessionPrefix } from '../../src/ledger/worker.js';
import pg from 'pg';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import type { Reply } from '../../src/client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups.length = 0;
});

async function rigOn(
  nats: NatsServer,
  o: { gateways: number; workers: number; metrics?: boolean },
  env: Record<string, string> = {},
  databaseUrl = inject('databaseUrl'),
) {
  const rig = new Rig(nats.url, databaseUrl, env);
  // Registered first, so a start that fails half-way stops what it started.
  cleanups.push(() => rig.stop());
  return rig.start(o);
}

async function ownNats(extra: string[] = []) {
  const nats = await NatsServer.start(extra);
  cleanups.push(() => nats.destroy());
  return nats;
}

/** The grpc.health.v1 status of a gateway for `service` ('' = the server), or the error code. */
async function health(address: string, service = ''): Promise<string> {
  const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as Reply;
  const client = new def.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<string>((resolve) =>
      client.Check({ service }, { deadline: Date.now() + 2_000 }, (err: grpc.ServiceError | null, res: { status: string }) =>
        resolve(err ? `error ${err.code}` : res.status),
      ),
    );
  } finally {
    client.close();
  }
}

/** Polls the health of a gateway until it is `want` (at most `ms`); returns what it was last. */
async function healthBecomes(address: string, want: string, ms = 5_000, service = ''): Promise<string> {
  let last = '';
  for (const until = Date.now() + ms; Date.now() < until;) {
    last = await health(address, service);
    if (last === want) break;
    await sleep(100);
  }
  return last;
}

/** Milliseconds from now until the load's next successful command. */
async function nextSuccess(load: FaultLoad): Promise<number> {
  const t0 = Date.now();
  const before = load.succeeded;
  for (let i = 0; i < 600 && load.succeeded === before; i++) await sleep(20);
  return Date.now() - t0;
}

async function loadOn(rig: Rig, lanes = 8) {
  const load = new FaultLoad(rig.clients, { prefix: rig.namespace, lanes, amount: '1.00' });
  await load.seed('100000.00');
  load.start();
  return load;
}

describe('faults under a running load, each ending with the auditor', () => {
  it('SIGKILL the worker mid-transaction and between commit and publish, several times; restarted, every event is applied once', async () => {
    const nats = await ownNats();
    // Outcomes published 150 ms after commit: a kill in that window leaves them in the outbox.
    const rig = await rigOn(nats, { gateways: 2, workers: 1 }, { ESCROW_LEDGER_BATCH_MAX: '16', ESCROW_FAULT_PUBLISH_DELAY_MS: '150' });
    const load = await loadOn(rig);
    const db = new pg.Client({ connectionString: inject('databaseUrl') });
    await db.connect();
    const killedAt = { inTransaction: 0, beforePublish: 0 };
    let recoveryMs = 0;
    // Deposits wait for their posting's outcome (funding no longer does): a steady trickle of
    // them keeps outcomes in the outbox, and the next one answered says the ledger is back.
    let deposited = 0;
    let depositing = true;
    const trickle = (async () => {
      for (let i = 0; depositing; i++) {
        await rig.clients[i % rig.clients.length]!.a('Deposit', PAYMENTS, {
          user_id: `${rig.namespace}-dep`,
          amount: { currency_code: 'USD', amount: '0.01' },
          external_reference: `trickle-${i}`,
        }).then(
          (r: { status: string }) => r.status === 'APPLIED' && deposited++,
          () => {},
        );
        await sleep(10);
      }
    })();
    for (let k = 0; k < 4; k++) {
      await sleep(phaseMs(1_500));
      // Even kills: while the lease session is inside a transaction. Odd: after a commit whose outcomes are not yet published.
      const want = k % 2 === 0 ? 'inTransaction' : 'beforePublish';
      for (let i = 0; i < 500; i++) {
        const { rows } = await db.query<{ tx: number; outbox: number }>(
          `SELECT (SELECT count(*)::int FROM pg_stat_activity WHERE starts_with(application_name, $1) AND state IN ('active', 'idle in transaction') AND xact_start IS NOT NULL) AS tx,
                  (SELECT count(*)::int FROM "${rig.namespace}".ledger_outbox) AS outbox`,
          [leaseSessionPrefix(rig.namespace)],
        );
        if ((want === 'inTransaction' && rows[0]!.tx > 0) || (want === 'beforePublish' && rows[0]!.outbox > 0)) {
          killedAt[want]++;
          break;
        }
        await sleep(2);
      }
      await rig.workers[0]!.kill();
      await sleep(300);
      await rig.workers[0]!.spawn();
      // Recovered when the next deposit is answered, which needs the ledger.
      const t0 = Date.now();
      const before = deposited;
      for (let i = 0; i < 500 && deposited === before; i++) await sleep(20);
      recoveryMs = Math.max(recoveryMs, Date.now() - t0);
    }
    depositing = false;
    await trickle;
    await db.end();
    await sleep(phaseMs(1_500));
    await load.stop();
    expect(load.settled.length).toBeGreaterThan(0);
    expect(killedAt.beforePublish).toBeGreaterThan(0);
    await verifyFault('worker SIGKILL x4', rig, load, { killedAt, recoveryMs });
  });

  it('SIGKILL a gateway with commands in flight: retries on the other gateway take effect once, answers agree', async () => {
    const nats = await ownNats();
    const rig = await rigOn(nats, { gateways: 2, workers: 1 });
    const load = await loadOn(rig, 12);
    await sleep(phaseMs(2_000));
    await rig.gateways[0]!.kill();
    const recoveryMs = await nextSuccess(load);
    await sleep(phaseMs(2_000));
    await rig.gateways[0]!.spawn();
    await sleep(phaseMs(1_000));
    await load.stop();
    expect(load.settled.length).toBeGreaterThan(0);
    await verifyFault('gateway SIGKILL', rig, load, { recoveryMs });
  });

  it('restart nats-server: gateways and workers reconnect on their own, commands in the outage fail fast', async () => {
    const nats = await ownNats();
    const rig = await rigOn(nats, { gateways: 2, workers: 1 });
    const load = await loadOn(rig);
    await sleep(phaseMs(2_000));
    expect(await health(rig.gateways[0]!.address)).toBe('SERVING');
    await nats.kill('SIGKILL');
    const downAt = Date.now();
    // A load balancer must see the gateway cannot serve.
    const healthDown = await healthBecomes(rig.gateways[0]!.address, 'NOT_SERVING');
    expect(healthDown).toBe('NOT_SERVING');
    await sleep(300);
    // Probes during the outage: each must fail at once with UNAVAILABLE, not hang.
    const probes = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const t0 = Date.now();
        const code = await rig.clients[i % 2]!.m('CreateMilestone', load.employer, {
          project_id: `${rig.namespace}-p`,
          freelancer_id: load.freelancer,
          amount: { currency_code: 'USD', amount: '1.00' },
          idempotency_key: `probe-${i}`,
        }).then(
          () => 'OK',
          (err: { code: number }) => (err.code === 14 ? 'UNAVAILABLE' : String(err.code)),
        );
        return { code, ms: Date.now() - t0 };
      }),
    );
    await sleep(1_500);
    await nats.resume();
    const upAt = Date.now();
    const succeededBefore = load.succeeded;
    for (let i = 0; i < 300 && load.succeeded === succeededBefore; i++) await sleep(50);
    const recoveryMs = Date.now() - upAt;
    expect(await healthBecomes(rig.gateways[0]!.address, 'SERVING')).toBe('SERVING');
    await sleep(phaseMs(2_000));
    await load.stop();
    const sorted = probes.map((p) => p.ms).sort((a, b) => a - b);
    const p95 = sorted[Math.floor(sorted.length * 0.95)]!;
    expect(probes.every((p) => p.code === 'UNAVAILABLE')).toBe(true);
    expect(p95).toBeLessThan(1_000);
    await verifyFault('nats-server restart', rig, load, {
      outageMs: upAt - downAt,
      outageProbes: probes.length,
      outageProbeP95Ms: p95,
      healthDuringOutage: healthDown,
      recoveryMs,
    });
  });

  it('PostgreSQL drops and refuses connections: the worker backs off and resumes; reads say UNAVAILABLE, never wrong numbers', async () => {
    const nats = await ownNats();
    const proxy = new TcpProxy(Number(new URL(inject('databaseUrl')).port || 5432));
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const url = new URL(inject('databaseUrl'));
    url.host = `127.0.0.1:${proxy.port}`;
    const rig = await rigOn(nats, { gateways: 2, workers: 1 }, {}, url.toString());
    const load = await loadOn(rig);
    await sleep(phaseMs(2_000));
    proxy.drop();
    const downAt = Date.now();
    const healthDown = await healthBecomes(rig.gateways[0]!.address, 'NOT_SERVING');
    // During the outage a balance read must fail, not answer a stale or zero figure.
    const read = await rig.clients[0]!.a('GetBalance', load.employer, { user_id: load.employer, currency_code: 'USD' }).then(
      () => 'answered',
      (err: { code: number; reason: string }) => err.reason,
    );
    await sleep(2_000);
    proxy.restore();
    const upAt = Date.now();
    const settledBefore = load.settled.length;
    for (let i = 0; i < 600 && load.settled.length === settledBefore; i++) await sleep(50);
    const recoveryMs = Date.now() - upAt;
    const healthUp = await healthBecomes(rig.gateways[0]!.address, 'SERVING');
    await sleep(phaseMs(2_000));
    await load.stop();
    expect(rig.workers[0]!.child!.exitCode).toBeNull();
    expect(read).toBe('DATABASE_UNAVAILABLE');
    expect([healthDown, healthUp]).toEqual(['NOT_SERVING', 'SERVING']);
    await verifyFault('postgres connections dropped', rig, load, {
      outageMs: upAt - downAt,
      readDuringOutage: read,
      healthDuringOutage: healthDown,
      recoveryMs,
    });
  });

  it('a three-node NATS cluster with the stream at R3: stop one node during load, no acknowledged event is lost', async () => {
    const nodes = await natsCluster(3);
    cleanups.push(() => Promise.all(nodes.map((n) => n.destroy())).then(() => {}));
    const urls = nodes.map((n) => n.url).join(',');
    // The cluster elects its JetStream leader a moment after the routes connect.
    await sleep(3_000);
    const { connect } = await import('@nats-io/transport-node');
    const probe = await connect({ servers: urls });
    const version = probe.info?.version ?? '0.0.0';
    await probe.close();
    const safe = versionAtLeast(version, SAFE_REPLICATED_SERVER);
    // Before 2.9.21 a replicated stream does not serialize conditional appends (see
    // nats-cas.test.ts): the engine refuses it unless told otherwise, and then only one
    // gateway may append, so each subject never sees two appends in flight.
    const rig = new Rig(urls, inject('databaseUrl'), {
      ESCROW_STREAM_REPLICAS: '3',
      ...(safe ? {} : { ESCROW_UNSAFE_REPLICATED_STREAM: '1' }),
    });
    if (!safe) {
      const refused = await EngineProcess.start(
        'gateway',
        rig.env({ ESCROW_UNSAFE_REPLICATED_STREAM: '0', GRPC_ADDRESS: `127.0.0.1:${await freePort()}` }),
      ).then(
        async (p) => (await p.stop(), 'started'),
        (err: Error) => (/does not serialize conditional appends/.test(err.message) ? 'refused' : err.message),
      );
      expect(refused).toBe('refused');
    }
    cleanups.push(() => rig.stop());
    for (let i = 0; i < 20; i++) {
      try {
        await rig.start({ gateways: safe ? 2 : 1, workers: 1 });
        break;
      } catch (err) {
        await rig.stopProcesses();
        if (i === 19) throw err;
        await sleep(1_000);
      }
    }
    const load = await loadOn(rig);
    await sleep(phaseMs(2_000));
    // The stream's leader is the node whose loss matters most.
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: urls });
    const leader = (await (await jetstreamManager(nc)).streams.info(rig.namespace.toUpperCase())).cluster?.leader ?? 'escrow-node-0';
    await nc.close();
    const victim = Math.max(0, Number(/escrow-node-(\d+)/.exec(leader)?.[1] ?? 0));
    await nodes[victim]!.kill('SIGKILL');
    const recoveryMs = await nextSuccess(load);
    await sleep(phaseMs(3_000));
    await load.stop();
    const survivors = nodes
      .filter((_, i) => i !== victim)
      .map((n) => n.url)
      .join(',');
    await verifyFault(
      `the stream leader of a three-node NATS cluster killed (R3, nats-server ${version}, ${rig.gateways.length} gateway)`,
      rig,
      load,
      { recoveryMs, killed: leader },
      survivors,
    );
  });

  it('two workers: the active one SIGKILLed again and again, the standby takes the lease each time; nothing applied twice', async () => {
    const nats = await ownNats();
    const rig = await rigOn(nats, { gateways: 2, workers: 2 }, { ESCROW_LEDGER_STANDBY_POLL_MS: '100' });
    const load = await loadOn(rig);
    const db = new pg.Client({ connectionString: inject('databaseUrl') });
    await db.connect();
    const active = async () => {
      const { rows } = await db.query<{ name: string }>(
        'SELECT application_name AS name FROM pg_stat_activity WHERE starts_with(application_name, $1)',
        [leaseSessionPrefix(rig.namespace)],
      );
      const pids = rows.map((r) => Number(r.name.slice(leaseSessionPrefix(rig.namespace).length)));
      return rig.workers.find((w) => w.child && pids.includes(w.child.pid!)) ?? null;
    };
    let takeovers = 0;
    let recoveryMs = 0;
    for (let k = 0; k < 3; k++) {
      await sleep(phaseMs(1_200));
      let victim = null;
      for (let i = 0; i < 200 && !victim; i++) {
        victim = await active();
        if (!victim) await sleep(20);
      }
      expect(victim).not.toBeNull();
      if (!victim) return;
      await victim.kill();
      const t0 = Date.now();
      let next = null;
      for (let i = 0; i < 500 && (!next || next === victim); i++) {
        next = await active();
        if (!next) await sleep(10);
      }
      if (next && next !== victim) takeovers++;
      const settled = load.settled.length;
      for (let i = 0; i < 500 && load.settled.length === settled; i++) await sleep(20);
      recoveryMs = Math.max(recoveryMs, Date.now() - t0);
      await victim.spawn();
    }
    await db.end();
    await load.stop();
    expect(takeovers).toBe(3);
    expect(load.settled.length).toBeGreaterThan(0);
    await verifyFault('active worker of two SIGKILLed x3', rig, load, { takeovers, recoveryMs });
  });

  it('mailbox overload: a burst far above the bound gets RESOURCE_EXHAUSTED quickly, the mailbox never holds more than its bound', async () => {
    const nats = await ownNats();
    const rig = await rigOn(nats, { gateways: 1, workers: 1, metrics: true }, { ESCROW_MAILBOX_MAX: '64' });
    const load = new FaultLoad(rig.clients, { prefix: rig.namespace, lanes: 1, amount: '1.00' });
    await load.seed('100.00');
    const c = rig.clients[0]!;
    const m = (
      await c.m('CreateMilestone', load.employer, {
        project_id: 'p',
        freelancer_id: load.freelancer,
        amount: { currency_code: 'USD', amount: '10.00' },
        idempotency_key: 'one',
      })
    ).milestone;
    const rssBefore = rig.gateways[0]!.rssBytes();
    const burst = 5_000;
    // The gateway's own count of queued commands, read from its metrics while the burst runs.
    let maxQueued = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const body = await fetch(`http://${rig.metricsAddresses[0]}/metrics`).then(
          (r) => r.text(),
          () => '',
        );
        const queued = Number(/escrow_mailbox_queued\{kind="milestone"\} (\d+)/.exec(body)?.[1] ?? 0);
        maxQueued = Math.max(maxQueued, queued);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = Date.now();
    const codes: Record<string, number> = {};
    const latencies: number[] = [];
    await Promise.all(
      Array.from({ length: burst }, async (_, i) => {
        const s = Date.now();
        const code = await c
          .m('ReleaseMilestone', load.employer, {
            milestone_id: m.id,
            amount: { currency_code: 'USD', amount: '0.01' },
            idempotency_key: `burst-${i}`,
          })
          .then(
            () => 'OK',
            (err: { code: number }) => String(err.code === 8 ? 'RESOURCE_EXHAUSTED' : err.code),
          );
        codes[code] = (codes[code] ?? 0) + 1;
        if (code === 'RESOURCE_EXHAUSTED') latencies.push(Date.now() - s);
      }),
    );
    const elapsedMs = Date.now() - t0;
    sampling = false;
    await sampler;
    const rssAfter = rig.gateways[0]!.rssBytes();
    latencies.sort((a, b) => a - b);
    const p95 = latencies[Math.floor(latencies.length * 0.95)] ?? 0;
    const p50 = latencies[Math.floor(latencies.length * 0.5)] ?? 0;
    // The actor drains refusals fast, so not every command finds the mailbox full; many must.
    expect(codes.RESOURCE_EXHAUSTED ?? 0).toBeGreaterThan(burst / 10);
    // Refusals are answered from memory; what a 5,000-call burst from one client on two cores
    // costs in latency is mostly the client's own queue, so the bound is on the whole burst.
    expect(elapsedMs).toBeLessThan(30_000);
    expect(rig.gateways[0]!.child!.exitCode).toBeNull();
    // What is bounded is the mailbox (RSS after a burst of 5,000 calls says more about the
    // allocator of the Node line than about queues: it is printed, not asserted).
    expect(maxQueued).toBeGreaterThan(0);
    expect(maxQueued).toBeLessThanOrEqual(64);
    const released = (await c.m('GetMilestone', load.employer, { milestone_id: m.id })).milestone.released.amount;
    expect(new Decimal(released).times(100).toNumber()).toBe(codes.OK ?? 0);
    const audit = await rig.audit();
    console.log(
      `FAULT ${JSON.stringify({ fault: 'mailbox overload', commandsSent: burst, byCode: codes, elapsedMs, exhaustedP50Ms: p50, exhaustedP95Ms: p95, maxQueued, rssGrowthMB: Math.round((rssAfter - rssBefore) / 1048576), violations: audit.violations.length })}`,
    );
    expect(audit.violations).toEqual([]);
  });
});
