/**
 * A hot employer: `npm run bench:hot -- [--creates N] [--concurrency C] [--gateways G]`. In one
 * run, against G gateways (the calls spread over them) and a worker process on a fresh namespace, it makes N CreateMilestone calls at C in
 * flight, first spread over C employers, then all by one employer (one account actor decides
 * every reservation, one at a time), and prints both rates and latencies and their ratio, with
 * the auditor's verdict. Needs DATABASE_URL and NATS_URL; removes its namespace afterwards.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { natsAuthFrom, natsOptions } from '../src/config.js';
import { EventLog } from '../src/events/log.js';
import { names } from '../src/events/names.js';
import { runAudit } from '../src/ledger/auditor.js';
import { createPool } from '../src/ledger/db.js';
import { freePort } from '../src/dev/embedded.js';
import { EscrowClient, statusName } from '../src/client.js';
import { dropNamespace, runNamespace } from '../tools/namespace.js';
import { EngineProcess, LOAD_TOOL_LIMITS } from '../tools/processes.js';
import { runBounded, summarize, type LatencySummary } from './stats.js';

const { values: a } = parseArgs({
  options: {
    creates: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '256' },
    gateways: { type: 'string', default: '1' },
  },
});
const gatewayCount = Math.max(1, Math.min(4, Number(a.gateways)));
const creates = Math.min(20_000, Number(a.creates));
const concurrency = Math.min(1_000, Number(a.concurrency));
const databaseUrl = process.env.DATABASE_URL;
const natsUrl = process.env.NATS_URL;
if (!databaseUrl || !natsUrl) {
  console.error('bench:hot needs DATABASE_URL and NATS_URL');
  process.exit(2);
}
const secret = randomBytes(16).toString('hex');
const namespace = runNamespace('hot');
const log = (m: string) => console.error(`[hot] ${m}`);

interface Run {
  employers: number;
  createsPerSecond: number;
  latencyMs: LatencySummary;
  answers: Record<string, number>;
}

async function run(clients: EscrowClient[], label: string, employers: number): Promise<Run> {
  const c = clients[0]!;
  const per = Math.ceil(creates / employers);
  for (let e = 0; e < employers; e++) {
    await c.a(
      'Deposit',
      { id: 'payments-svc', roles: ['payments'] },
      { user_id: `${label}-emp-${e}`, amount: { currency_code: 'USD', amount: `${per}.00` }, external_reference: `${label}-dep-${e}` },
    );
  }
  const latencies: number[] = [];
  const answers: Record<string, number> = {};
  const t0 = Date.now();
  await runBounded(
    Array.from({ length: creates }, (_, i) => async () => {
      const s = performance.now();
      const r = await clients[i % clients.length]!.m('CreateMilestone', `${label}-emp-${i % employers}`, {
        project_id: `${label}-p-${i % employers}`,
        freelancer_id: `${label}-fl`,
        amount: { currency_code: 'USD', amount: '1.00' },
        idempotency_key: `${label}-${i}`,
      }).then(
        (x: { milestone: { status: string } }) => x.milestone.status,
        (e: { reason?: string }) => `${statusName(e)} ${e.reason ?? ''}`.trim(),
      );
      latencies.push(performance.now() - s);
      answers[r] = (answers[r] ?? 0) + 1;
    }),
    concurrency,
  );
  const seconds = (Date.now() - t0) / 1000;
  return { employers, createsPerSecond: Math.round(creates / seconds), latencyMs: summarize(latencies), answers };
}

const started: EngineProcess[] = [];
try {
  const base = {
    DATABASE_URL: databaseUrl,
    NATS_URL: natsUrl,
    AUTH_JWT_SECRET: secret,
    ESCROW_NAMESPACE: namespace,
    LOG_LEVEL: 'warn',
    ...LOAD_TOOL_LIMITS,
  };
  const clients: EscrowClient[] = [];
  for (let g = 0; g < gatewayCount; g++) {
    const gateway = await EngineProcess.start('gateway', { ...base, GRPC_ADDRESS: `127.0.0.1:${await freePort()}` });
    started.push(gateway);
    clients.push(new EscrowClient(gateway.address, secret));
  }
  started.push(await EngineProcess.start('worker', { ...base, GRPC_ADDRESS: `127.0.0.1:${await freePort()}` }));
  log(`${creates} creates at ${concurrency} in flight through ${gatewayCount} gateway(s), spread over ${concurrency} employers`);
  const spread = await run(clients, 'spread', concurrency);
  log(`${creates} creates at ${concurrency} in flight through ${gatewayCount} gateway(s), all by one employer`);
  const hot = await run(clients, 'hot', 1);
  for (const c of clients) c.close();
  const nc = await connect(natsOptions(natsUrl, natsAuthFrom()));
  const pool = createPool(databaseUrl, namespace);
  const eventLog = await EventLog.open(nc, names(namespace), {
    duplicateWindowMs: 120_000,
    signingSecret: secret,
    allowUnsafeReplicas: true,
  });
  const audit = await runAudit(eventLog, pool, 30_000);
  await pool.end();
  await nc.close();
  const ratio = Math.round((hot.createsPerSecond / spread.createsPerSecond) * 100) / 100;
  console.log(
    `spread  ${spread.createsPerSecond}/s  p50 ${spread.latencyMs.p50} ms  p99 ${spread.latencyMs.p99} ms  ${JSON.stringify(spread.answers)}`,
  );
  console.log(
    `hot     ${hot.createsPerSecond}/s  p50 ${hot.latencyMs.p50} ms  p99 ${hot.latencyMs.p99} ms  ${JSON.stringify(hot.answers)}`,
  );
  console.log(`ratio   hot/spread ${ratio}  audit ${audit.ok ? 'pass' : 'FAIL'}`);
  console.log(
    JSON.stringify({
      hotAccount: {
        creates,
        concurrency,
        gateways: gatewayCount,
        spread,
        hot,
        hotOverSpread: ratio,
        audit: audit.ok ? 'pass' : 'fail',
        violations: audit.violations,
      },
    }),
  );
  if (!audit.ok) process.exitCode = 1;
} finally {
  for (const p of started) await p.stop().catch(() => {});
  await dropNamespace(databaseUrl, natsUrl, namespace).catch(() => {});
}
