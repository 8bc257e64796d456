import { randomBytes } from 'node:crypto';
import { statusName, type User, type Reply } from '../src/client.js';
import { elapsedMs, runBounded, summarize, type LatencySummary } from './stats.js';

/**
 * The mixed workload of the k6 throughput script: deposit 5%, create 30%, release 20%,
 * cancel 10%, get 25%, list 10%, over a set of employers with funded balances.
 */

export interface MixedClient {
  m(method: string, user: User, request: object): Promise<Reply>;
  a(method: string, user: User, request: object): Promise<Reply>;
}

export interface MixedResult {
  /** Operations that succeeded; opsPerSecond counts only these. */
  operations: number;
  errors: Record<string, number>;
  opsPerSecond: number;
  latencyMs: LatencySummary;
}

interface Pool {
  prefix: string;
  users: number;
  open: { id: string; user: number }[];
  seq: number;
}

export async function seedMixed(clients: MixedClient[], users: number): Promise<Pool> {
  const prefix = `mx${randomBytes(3).toString('hex')}`;
  await runBounded(
    Array.from(
      { length: users },
      (_, u) => () =>
        clients[u % clients.length]!.a(
          'Deposit',
          { id: `${prefix}-pay`, roles: ['payments'] },
          {
            user_id: `${prefix}-emp-${u}`,
            amount: { currency_code: 'USD', amount: '1000000.00' },
            external_reference: `${prefix}-seed-${u}`,
          },
        ).then(() => {}),
    ),
    32,
  );
  return { prefix, users, open: [], seq: 0 };
}

async function one(client: MixedClient, p: Pool): Promise<void> {
  const n = p.seq++;
  const u = n % p.users;
  const employer = `${p.prefix}-emp-${u}`;
  const freelancer = `${p.prefix}-fl-${u}`;
  const key = `${p.prefix}-${n}`;
  const pick = Math.random();
  if (pick < 0.05) {
    await client.a(
      'Deposit',
      { id: `${p.prefix}-pay`, roles: ['payments'] },
      { user_id: employer, amount: { currency_code: 'USD', amount: '10.00' }, external_reference: key },
    );
  } else if (pick < 0.35 || p.open.length === 0) {
    const r = await client.m('CreateMilestone', employer, {
      project_id: `${p.prefix}-p-${u}`,
      freelancer_id: freelancer,
      amount: { currency_code: 'USD', amount: '1.00' },
      idempotency_key: key,
    });
    p.open.push({ id: r.milestone.id, user: u });
  } else if (pick < 0.55) {
    const m = p.open.pop()!;
    await client.m('ReleaseMilestone', `${p.prefix}-emp-${m.user}`, { milestone_id: m.id, idempotency_key: key });
  } else if (pick < 0.65) {
    const m = p.open.pop()!;
    await client.m('CancelMilestone', `${p.prefix}-fl-${m.user}`, { milestone_id: m.id, reason: 'mixed', idempotency_key: key });
  } else if (pick < 0.9) {
    const m = p.open[Math.floor(Math.random() * p.open.length)]!;
    await client.m('GetMilestone', `${p.prefix}-emp-${m.user}`, { milestone_id: m.id });
  } else {
    await client.m('ListMilestones', employer, { direction: 'OUTGOING', page_size: 20 });
  }
}

/** The create-only workload: CreateMilestone by the pool's employers, back to back; the milestones are kept open. */
export async function createOne(client: MixedClient, p: Pool): Promise<void> {
  const n = p.seq++;
  const u = n % p.users;
  const r = await client.m('CreateMilestone', `${p.prefix}-emp-${u}`, {
    project_id: `${p.prefix}-p-${u}`,
    freelancer_id: `${p.prefix}-fl-${u}`,
    amount: { currency_code: 'USD', amount: '1.00' },
    idempotency_key: `${p.prefix}-c-${n}`,
  });
  if (r.milestone.status !== 'FUNDED') throw Object.assign(new Error(`create answered ${r.milestone.status}`), { code: -1 });
}

/** Progress of a running workload, reported every few seconds: operations answered, errors by code. */
export type Progress = (p: { answered: number; elapsedMs: number; errors: Record<string, number> }) => void;

function ticker(progress: Progress | undefined, started: number, latencies: number[], errors: Record<string, number>): () => void {
  if (!progress) return () => {};
  const t = setInterval(() => progress({ answered: latencies.length, elapsedMs: Date.now() - started, errors }), 3_000);
  return () => clearInterval(t);
}

/** Closed loop: `concurrency` lanes issue operations (`op`, by default the mixed workload's) back to back for `durationMs`. */
export async function runMixedClosed(
  clients: MixedClient[],
  p: Pool,
  concurrency: number,
  durationMs: number,
  progress?: Progress,
  op: (c: MixedClient, p: Pool) => Promise<void> = one,
): Promise<MixedResult> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const stop = ticker(progress, Date.now(), latencies, errors);
  const until = Date.now() + durationMs;
  const started = Date.now();
  let ops = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      while (Date.now() < until) {
        const t0 = process.hrtime.bigint();
        try {
          await op(clients[lane % clients.length]!, p);
          ops++;
        } catch (err) {
          const s = statusName(err);
          errors[s] = (errors[s] ?? 0) + 1;
        }
        latencies.push(elapsedMs(t0));
      }
    }),
  );
  stop();
  return { operations: ops, errors, opsPerSecond: Math.round((ops / (Date.now() - started)) * 1000), latencyMs: summarize(latencies) };
}

/** Open loop: operations start at `rate` per second for `durationMs`, whatever the answers do. */
export async function runMixedOpen(
  clients: MixedClient[],
  p: Pool,
  rate: number,
  durationMs: number,
  progress?: Progress,
): Promise<MixedResult> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const stop = ticker(progress, Date.now(), latencies, errors);
  const inflight: Promise<void>[] = [];
  const started = Date.now();
  const total = Math.floor((rate * durationMs) / 1000);
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t0 = process.hrtime.bigint();
    inflight.push(
      one(clients[i % clients.length]!, p).then(
        () => void latencies.push(elapsedMs(t0)),
        (err) => {
          latencies.push(elapsedMs(t0));
          const s = statusName(err);
          errors[s] = (errors[s] ?? 0) + 1;
        },
      ),
    );
  }
  await Promise.all(inflight);
  stop();
  const ok = total - Object.values(errors).reduce((a, b) => a + b, 0);
  return { operations: ok, errors, opsPerSecond: Math.round((ok / (Date.now() - started)) * 1000), latencyMs: summarize(latencies) };
}
