import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { expect, inject } from 'vitest';
import { EscrowClient } from '../../src/client.js';
import { dropNamespace, runNamespace } from '../../tools/namespace.js';
import { EngineProcess, LOAD_TOOL_LIMITS } from '../../tools/processes.js';
import { checkHistory, type CallRecord } from '../../load/history.js';
import { freePort } from '../../src/dev/embedded.js';
import { natsServers } from '../../src/config.js';
import { EventLog } from '../../src/events/log.js';
import { names } from '../../src/events/names.js';
import { runAudit } from '../../src/ledger/auditor.js';
import { createPool } from '../../src/ledger/db.js';
import type { FaultLoad } from './load.js';

/** Short form for CI: FAULTS_SHORT=1 shortens every load phase. */
export const SHORT = process.env.FAULTS_SHORT === '1';
export const phaseMs = (full: number) => (SHORT ? Math.max(1_000, Math.round(full / 3)) : full);
/**
 * The seed of the property-based tests: FC_SEED if given; fixed in the short form, so CI is
 * repeatable; random otherwise, so runs on demand keep exploring.
 */
export const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : SHORT ? 20261201 : Date.now() % 2 ** 31;

/** Gateways and workers as processes on a fresh namespace, against the given NATS and PostgreSQL. */
export class Rig {
  readonly namespace = runNamespace('fault');
  readonly secret = randomBytes(16).toString('hex');
  readonly gateways: EngineProcess[] = [];
  readonly workers: EngineProcess[] = [];
  clients: EscrowClient[] = [];

  constructor(
    readonly natsUrl: string,
    readonly databaseUrl: string,
    private readonly extraEnv: Record<string, string> = {},
  ) {}

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      NATS_URL: this.natsUrl,
      AUTH_JWT_SECRET: this.secret,
      ESCROW_NAMESPACE: this.namespace,
      LOG_LEVEL: 'error',
      ESCROW_LEDGER_STANDBY_POLL_MS: '200',
      ESCROW_FUNDING_WAIT_MS: '3000',
      ESCROW_MAILBOX_MAX: '1000',
      ...LOAD_TOOL_LIMITS,
      ...this.extraEnv,
      ...extra,
    };
  }

  /** Where each gateway serves its metrics, when started with `metrics` (index of `gateways`). */
  readonly metricsAddresses: string[] = [];

  async start(o: { gateways: number; workers: number; metrics?: boolean }): Promise<this> {
    for (let i = 0; i < o.workers; i++) this.workers.push(await EngineProcess.start('worker', this.env()));
    for (let i = 0; i < o.gateways; i++) {
      const metrics = o.metrics ? { METRICS_ADDRESS: `127.0.0.1:${await freePort()}` } : {};
      if (metrics.METRICS_ADDRESS) this.metricsAddresses.push(metrics.METRICS_ADDRESS);
      this.gateways.push(await EngineProcess.start('gateway', this.env({ GRPC_ADDRESS: `127.0.0.1:${await freePort()}`, ...metrics })));
    }
    this.clients = this.gateways.map((g) => new EscrowClient(g.address, this.secret));
    return this;
  }

  /** Waits for the ledger, then the auditor's verdict (from the real database and the stream). */
  /** The auditor's report, and the history checker's verdict on `calls` (load/history.ts). */
  async audit(natsUrl = this.natsUrl, calls: CallRecord[] = []) {
    // A cluster that just lost a node may still be electing leaders: retry for a while.
    for (let attempt = 0; ; attempt++) {
      const nc = await connect({ servers: natsServers(natsUrl) });
      const pool = createPool(inject('databaseUrl'), this.namespace, 2);
      try {
        const log = await EventLog.open(nc, names(this.namespace), {
          duplicateWindowMs: 120_000,
          requestTimeoutMs: 10_000,
          signingSecret: this.secret,
          allowUnsafeReplicas: true,
        }); // read-only
        const report = await runAudit(log, pool, 60_000);
        return { ...report, history: await checkHistory(log, calls) };
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 2_000));
      } finally {
        await pool.end();
        await nc.close();
      }
    }
  }

  /** Stops every process and forgets them, so `start` can be tried again. */
  async stopProcesses(): Promise<void> {
    for (const c of this.clients) c.close();
    await Promise.all([...this.gateways, ...this.workers].map((p) => p.stop()));
    this.gateways.length = 0;
    this.workers.length = 0;
    this.clients = [];
  }

  async stop(): Promise<void> {
    await this.stopProcesses();
    await dropNamespace(inject('databaseUrl'), this.natsUrl, this.namespace).catch(() => {});
  }
}

/**
 * The end of every fault: the auditor finds nothing, every settled milestone ended exactly as
 * its one winning command said, every answer to that command agrees. Prints the figures.
 */
export async function verifyFault(name: string, rig: Rig, load: FaultLoad, extra: Record<string, unknown> = {}, natsUrl?: string) {
  const audit = await rig.audit(natsUrl, load.calls);
  // What the auditor found, and every answer a client got that the log does not bear out.
  const violations = [...audit.violations.map((v) => `${v.check}: ${v.detail}`), ...audit.history.problems.map((p) => `history: ${p}`)];
  // Any gateway will do; one just restarted may still be in its client's reconnect backoff.
  const read = async (id: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await rig.clients[attempt % rig.clients.length]!.m('GetMilestone', load.employer, { milestone_id: id })).milestone;
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  for (const s of load.settled) {
    const expected = s.kind === 'release' ? 'RELEASED' : 'CANCELLED';
    if (s.answers.some((a) => a !== expected)) violations.push(`answers disagree for ${s.id}: ${s.answers.join(',')}`);
    const m = await read(s.id);
    const ends = m.history.filter((h: { type: string }) => h.type === 'released' || h.type === 'cancelled').length;
    if (m.status !== expected || ends !== 1) violations.push(`${s.id} is ${m.status} with ${ends} ends`);
  }
  const report = { fault: name, ...load.summary(), callsProven: audit.history.calls, violations: violations.length, ...extra };
  console.log(`FAULT ${JSON.stringify(report)}`);
  expect(violations).toEqual([]);
  expect(audit.ledgerPending).toBe(0);
  return report;
}
