/**
 * The race harness: `npm run race -- [options]`. Runs the release/cancel race against
 * running gateways (--targets) or against gateways it starts itself (--spawn-gateways N, on
 * a fresh namespace of DATABASE_URL and NATS_URL, with one worker), then waits for the
 * ledger, runs the auditor, prints a human summary and one JSON line. Exits 1 when a
 * milestone had other than one winner, a contending kind won less than --min-win-share of its
 * milestones (contenders are shuffled, so each kind can win), or the auditor found a violation.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { EventLog } from '../src/events/log.js';
import { names } from '../src/events/names.js';
import { freePort } from '../src/dev/embedded.js';
import { natsAuthFrom, natsOptions } from '../src/config.js';
import { createPool } from '../src/ledger/db.js';
import { runAudit, type AuditReport } from '../src/ledger/auditor.js';
import { EscrowClient } from '../src/client.js';
import { dropNamespace, runNamespace } from '../tools/namespace.js';
import { EngineProcess, LOAD_TOOL_LIMITS } from '../tools/processes.js';
import { checkHistories, runRace, unfairKinds, type RaceResult } from './race.js';
import { checkHistory, writeHistory, type HistoryVerdict } from './history.js';
import { summarize, type LatencySummary } from './stats.js';

const { values: a } = parseArgs({
  options: {
    targets: { type: 'string' },
    secret: { type: 'string' },
    namespace: { type: 'string' },
    'grpc-port-base': { type: 'string' },
    'spawn-gateways': { type: 'string', default: '0' },
    milestones: { type: 'string', default: '200' },
    contenders: { type: 'string', default: '20' },
    'release-share': { type: 'string', default: '0.5' },
    'dispute-share': { type: 'string', default: '0' },
    'extra-share': { type: 'string', default: '0' },
    duplicates: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '512' },
    'duration-s': { type: 'string', default: '120' },
    amount: { type: 'string', default: '10.00' },
    'min-win-share': { type: 'string', default: '0.2' },
    'history-out': { type: 'string' },
    'no-audit': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (a.help) {
  console.log(`npm run race -- [--targets host:port,...  --secret S --namespace NS] | [--spawn-gateways N]
  --milestones 200 --contenders 20 --release-share 0.5 --duplicates 1 --concurrency 512 --duration-s 120 --amount 10.00
  --dispute-share 0   share of the milestones disputed first (settlement races release and cancel there)
  --min-win-share 0.2 fail unless each contending kind won at least this share of its milestones (0: off)
  --no-audit   skip the auditor      --keep   keep the namespace a spawned run made
  --namespace NS with --spawn-gateways: run there (kept afterwards) instead of a fresh one
  --grpc-port-base P  with --spawn-gateways: gateways on 127.0.0.1:P, P+1, ... instead of free ports`);
  process.exit(0);
}

function num(name: string, min: number, max: number): number {
  const v = Number(a[name as keyof typeof a]);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`--${name} must be a number in ${min}..${max}`);
    process.exit(64);
  }
  return v;
}

const opts = {
  spawn: num('spawn-gateways', 0, 8),
  milestones: num('milestones', 1, 100_000),
  contenders: num('contenders', 1, 1_000),
  releaseShare: num('release-share', 0, 1),
  disputeShare: num('dispute-share', 0, 1),
  extraShare: num('extra-share', 0, 0.9),
  duplicates: num('duplicates', 1, 20),
  concurrency: num('concurrency', 1, 10_000),
  durationMs: num('duration-s', 1, 600) * 1000,
  minWinShare: num('min-win-share', 0, 1),
};

const databaseUrl = process.env.DATABASE_URL;
const natsUrl = process.env.NATS_URL;
const processes: EngineProcess[] = [];
let namespace = a.namespace ?? process.env.ESCROW_NAMESPACE ?? 'escrow';
let secret = a.secret ?? process.env.AUTH_JWT_SECRET ?? '';
let targets = (a.targets ?? '').split(',').filter(Boolean);

async function main(): Promise<number> {
  if (opts.spawn > 0) {
    if (!databaseUrl || !natsUrl) {
      console.error('--spawn-gateways needs DATABASE_URL and NATS_URL (or pass --targets of running gateways)');
      return 64;
    }
    // A namespace given is the user's: used as it is and kept; else a fresh one, removed after.
    if (!a.namespace) namespace = runNamespace('race');
    // The secret given (--secret, AUTH_JWT_SECRET) is used, so that tools run afterwards (check-history, audit) can verify the events.
    secret = a.secret ?? process.env.AUTH_JWT_SECRET ?? randomBytes(16).toString('hex');
    const base = {
      DATABASE_URL: databaseUrl,
      NATS_URL: natsUrl,
      AUTH_JWT_SECRET: secret,
      ESCROW_NAMESPACE: namespace,
      LOG_LEVEL: 'warn',
      ESCROW_MAILBOX_MAX: '10000',
      ...LOAD_TOOL_LIMITS,
    };
    processes.push(await EngineProcess.start('worker', base));
    const portBase = a['grpc-port-base'] ? num('grpc-port-base', 1, 65_535 - opts.spawn) : null;
    for (let i = 0; i < opts.spawn; i++) {
      processes.push(
        await EngineProcess.start('gateway', { ...base, GRPC_ADDRESS: `127.0.0.1:${portBase === null ? await freePort() : portBase + i}` }),
      );
    }
    targets = processes.filter((p) => p.role === 'gateway').map((p) => p.address);
  }
  if (targets.length === 0 || !secret) {
    console.error('give --targets host:port,... and --secret (or AUTH_JWT_SECRET), or --spawn-gateways N');
    return 64;
  }
  const clients = targets.map((t) => new EscrowClient(t, secret));
  const prefix = `r${randomBytes(3).toString('hex')}`;
  let race: RaceResult;
  let historyProblems: string[];
  try {
    race = await runRace({
      clients,
      amount: a.amount,
      prefix,
      ...opts,
      // Progress for the person watching, on stderr: answered so far, rate, outcomes.
      onProgress: (p) =>
        console.error(
          `[race] ${p.answered}/${p.sent} answered in ${Math.round(p.elapsedMs / 1000)} s (${Math.round((p.answered / Math.max(1, p.elapsedMs)) * 1000)}/s) ${JSON.stringify(p.byCode)}`,
        ),
    });
    // What the clients were told, against the milestones as GetMilestone shows them.
    historyProblems = await checkHistories(clients, race);
    if (a['history-out']) writeHistory(a['history-out'], race.calls);
  } finally {
    for (const c of clients) c.close();
  }

  let audit: AuditReport | null = null;
  let logProof: HistoryVerdict | null = null;
  let lag: LatencySummary | null = null;
  if (!a['no-audit'] && databaseUrl && natsUrl) {
    const nc = await connect(natsOptions(natsUrl, natsAuthFrom()));
    const log = await EventLog.open(nc, names(namespace), {
      duplicateWindowMs: 120_000,
      signingSecret: process.env.ESCROW_EVENT_KEY ?? secret,
      allowUnsafeReplicas: true,
    }); // read-only
    const pool = createPool(databaseUrl, namespace, 2);
    try {
      audit = await runAudit(log, pool, 60_000);
      lag = await ledgerLag(pool, race);
      // Every call's answer, against the event log (see load/history.ts).
      const proof = await checkHistory(log, race.calls);
      historyProblems.push(...proof.problems);
      logProof = proof;
    } finally {
      await pool.end();
      await nc.close();
    }
  }

  const wrongWinners = race.disputedIds.filter((id) => race.winners[id] !== undefined && race.winners[id] !== 'settle');
  const oneWinnerEach = Object.keys(race.winnersHistogram).every((k) => k === '1') && wrongWinners.length === 0;
  const winnerKinds = race.winnerKinds;
  const unfair = unfairKinds(race, opts.minWinShare);
  const verdict = audit ? (audit.ok ? 'pass' : 'fail') : 'skipped';
  console.log(
    `race: ${race.milestoneIds.length} milestones x ${opts.contenders} contenders x ${opts.duplicates} copies over ${targets.length} gateway(s)`,
  );
  console.log(
    `  ${race.commands} commands in ${race.elapsedMs} ms = ${race.commandsPerSecond}/s; latency ms p50 ${race.latencyMs.p50} p95 ${race.latencyMs.p95} p99 ${race.latencyMs.p99}`,
  );
  console.log(
    `  winners per milestone: ${JSON.stringify(race.winnersHistogram)} ${oneWinnerEach ? '(exactly one each)' : '(VIOLATION: not exactly one)'}`,
  );
  console.log(
    `  winners by kind: ${JSON.stringify(winnerKinds)}${race.disputedIds.length ? ` (${race.disputedIds.length} disputed first${wrongWinners.length ? `; VIOLATION: ${wrongWinners.length} disputed won by release or cancel` : ''})` : ''}`,
  );
  console.log(
    `  contended by kind: ${JSON.stringify(race.contendedKinds)}${unfair.length ? ` (VIOLATION: ${unfair.map((u) => `${u.kind} won ${u.won} of ${u.contended}`).join(', ')}, below --min-win-share ${opts.minWinShare})` : ''}`,
  );
  console.log(`  losers by status: ${JSON.stringify(race.loserCodes)}`);
  console.log(
    `  history checker: ${historyProblems.length === 0 ? `every answer agrees with the log${logProof ? ` (${logProof.calls} calls on ${logProof.milestones} milestones proven against their events; ${logProof.refusedThenApplied} copies refused before their twin took effect)` : ''}` : `VIOLATION: ${historyProblems.length} (${historyProblems.slice(0, 3).join('; ')})`}`,
  );
  if (lag) console.log(`  ledger lag (answer -> posting written) ms: p50 ${lag.p50} p99 ${lag.p99}`);
  console.log(`  auditor: ${verdict}${audit && !audit.ok ? ` ${JSON.stringify(audit.violations)}` : ''}`);
  console.log(
    JSON.stringify({
      race: {
        milestones: race.milestoneIds.length,
        contenders: opts.contenders,
        duplicates: opts.duplicates,
        gateways: targets.length,
        targets,
        commands: race.commands,
        commandsPerSecond: race.commandsPerSecond,
        latencyMs: race.latencyMs,
        winnersHistogram: race.winnersHistogram,
        winnerKinds,
        contendedKinds: race.contendedKinds,
        unfairKinds: unfair,
        historyProblems,
        disputed: race.disputedIds.length,
        loserCodes: race.loserCodes,
        ledgerLagMs: lag,
        audit: verdict,
        violations: audit?.violations ?? [],
      },
    }),
  );
  return oneWinnerEach && unfair.length === 0 && historyProblems.length === 0 && verdict !== 'fail' ? 0 : 1;
}

/** Answer of each winning command -> its posting's write time, from the postings table. */
async function ledgerLag(pool: ReturnType<typeof createPool>, race: RaceResult): Promise<LatencySummary> {
  const ids = race.wins.map((w) => w.eventId);
  const { rows } = await pool.query<{ event_id: string; at: string }>(
    'SELECT event_id::text, (extract(epoch FROM created_at) * 1000)::text AS at FROM postings WHERE event_id = ANY($1::uuid[])',
    [ids],
  );
  const written = new Map(rows.map((r) => [r.event_id, Number(r.at)]));
  return summarize(race.wins.flatMap((w) => (written.has(w.eventId) ? [written.get(w.eventId)! - w.ackedAt] : [])));
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
} finally {
  await Promise.all(processes.map((p) => p.stop()));
  if (opts.spawn > 0 && !a.keep && !a.namespace && databaseUrl && natsUrl)
    await dropNamespace(databaseUrl, natsUrl, namespace).catch(() => {});
}
process.exit(code);
