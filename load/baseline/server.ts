/**
 * The locking baseline of the benchmark: the same proto served the straightforward way,
 * every command one PostgreSQL transaction with SELECT ... FOR UPDATE; no actors, no NATS.
 * A comparator only: it has none of the engine's event log, outcomes or read model.
 *   DATABASE_URL=... node --import tsx load/baseline/server.ts 127.0.0.1:50071 <schema> <secret>
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { Authenticator } from '../../src/gateway/auth.js';
import { loadEscrowPackage } from '../../src/gateway/proto.js';
import { toServiceError } from '../../src/gateway/status.js';
import * as v from '../../src/gateway/validate.js';
import { FailedPrecondition, NotFound, PermissionDenied } from '../../src/errors.js';
import { milestoneIdFor } from '../../src/ids.js';
import type { Reply } from '../../src/client.js';

// Like the engine (ESCROW_SOURCE_MAPS off), no source-mapped stacks: the comparison stays fair.
process.setSourceMapsEnabled(false);
const [address = '127.0.0.1:50071', schema = 'bench_baseline', secret = ''] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 16, options: `-c search_path=${schema}` });
const auth = new Authenticator({ secret: secret });
const money = (amount: string) => ({ currency_code: 'USD', amount });

async function tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

function reply(m: Reply) {
  return {
    milestone: {
      id: m.id,
      project_id: m.project_id,
      employer_id: m.employer_id,
      freelancer_id: m.freelancer_id,
      amount: money(m.amount),
      held: money(m.held),
      released: money(m.released),
      returned: money(m.returned),
      status: m.status,
      version: m.version,
      description: '',
      history: [],
    },
  };
}

type Handler = (req: Reply, caller: { id: string; roles: readonly string[] }) => Promise<unknown>;
const unary = (fn: Handler) => (call: grpc.ServerUnaryCall<Reply, Reply>, cb: grpc.sendUnaryData<Reply>) => {
  auth
    .authenticate(call.metadata)
    .then((caller) => fn(call.request, caller))
    .then(
      (r) => cb(null, r),
      (err) => cb(toServiceError(err) as grpc.ServiceError),
    );
};

const lockMilestone = (c: pg.PoolClient, id: string) =>
  c.query(
    'SELECT id::text, project_id, employer_id, freelancer_id, amount::text, held::text, released::text, returned::text, status, version FROM milestones WHERE id = $1 FOR UPDATE',
    [id],
  );

async function settle(req: Reply, caller: { id: string }, kind: 'release' | 'cancel') {
  const id = v.requireMilestoneId(req.milestone_id);
  const key = v.requireKey(req.idempotency_key);
  return tx(async (c) => {
    const m = (await lockMilestone(c, id)).rows[0];
    if (!m) throw new NotFound('MILESTONE_NOT_FOUND', 'no such milestone');
    const seen = await c.query('SELECT 1 FROM applied_keys WHERE milestone_id = $1 AND key = $2', [id, key]);
    if (seen.rowCount) return reply(m);
    const party = kind === 'release' ? m.employer_id : m.freelancer_id;
    if (caller.id !== party) throw new PermissionDenied(kind === 'release' ? 'NOT_EMPLOYER' : 'NOT_FREELANCER', 'wrong party');
    if (m.status !== 'FUNDED') throw new FailedPrecondition('ILLEGAL_IN_STATUS', 'not funded');
    const to = kind === 'release' ? m.freelancer_id : m.employer_id;
    await c.query('SELECT 1 FROM balances WHERE (user_id = $1 OR user_id = $2) AND currency = $3 ORDER BY user_id FOR UPDATE', [
      m.employer_id,
      m.freelancer_id,
      'USD',
    ]);
    await c.query('UPDATE balances SET held = held - $2 WHERE user_id = $1 AND currency = $3', [m.employer_id, m.held, 'USD']);
    await c.query('UPDATE balances SET incoming = incoming - $2 WHERE user_id = $1 AND currency = $3', [m.freelancer_id, m.held, 'USD']);
    await c.query('UPDATE balances SET available = available + $2 WHERE user_id = $1 AND currency = $3', [to, m.held, 'USD']);
    const status = kind === 'release' ? 'RELEASED' : 'CANCELLED';
    const r = await c.query(
      `UPDATE milestones SET held = 0, ${kind === 'release' ? 'released' : 'returned'} = held, status = $2, version = version + 1 WHERE id = $1
       RETURNING id::text, project_id, employer_id, freelancer_id, amount::text, held::text, released::text, returned::text, status, version`,
      [id, status],
    );
    await c.query('INSERT INTO applied_keys VALUES ($1, $2)', [id, key]);
    return reply(r.rows[0]);
  });
}

const pkg = loadEscrowPackage();
const server = new grpc.Server();
server.addService(pkg.AccountService.service, {
  Deposit: unary(async (req, caller) => {
    if (!caller.roles.includes('payments')) throw new PermissionDenied('PAYMENTS_ROLE_REQUIRED', 'payments only');
    const user = v.requireId(req.user_id, 'user_id');
    const m = v.requireMoney(req.amount, 'amount');
    const ref = v.requireReference(req.external_reference);
    await tx(async (c) => {
      const ins = await c.query('INSERT INTO deposits VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [ref, user, m.amount]);
      if (!ins.rowCount) return;
      await c.query(
        `INSERT INTO balances (user_id, currency, available) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, currency) DO UPDATE SET available = balances.available + EXCLUDED.available`,
        [user, m.currency, m.amount],
      );
    });
    return { operation_id: ref, status: 'APPLIED' };
  }),
});
server.addService(pkg.MilestoneService.service, {
  CreateMilestone: unary(async (req, caller) => {
    const project = v.requireId(req.project_id, 'project_id');
    const freelancer = v.requireId(req.freelancer_id, 'freelancer_id');
    const m = v.requireMoney(req.amount, 'amount');
    const key = v.requireKey(req.idempotency_key);
    const id = milestoneIdFor(caller.id, key);
    return tx(async (c) => {
      const existing = (await lockMilestone(c, id)).rows[0];
      if (existing) return reply(existing);
      await c.query('INSERT INTO balances (user_id, currency) VALUES ($1, $3), ($2, $3) ON CONFLICT DO NOTHING', [
        caller.id,
        freelancer,
        m.currency,
      ]);
      const emp = await c.query('SELECT available::text FROM balances WHERE user_id = $1 AND currency = $2 FOR UPDATE', [
        caller.id,
        m.currency,
      ]);
      if (Number(emp.rows[0].available) < Number(m.amount)) throw new FailedPrecondition('INSUFFICIENT_FUNDS', 'short');
      await c.query('UPDATE balances SET available = available - $2, held = held + $2 WHERE user_id = $1 AND currency = $3', [
        caller.id,
        m.amount,
        m.currency,
      ]);
      await c.query('UPDATE balances SET incoming = incoming + $2 WHERE user_id = $1 AND currency = $3', [
        freelancer,
        m.amount,
        m.currency,
      ]);
      const r = await c.query(
        `INSERT INTO milestones (id, project_id, employer_id, freelancer_id, currency, amount, held, status) VALUES ($1, $2, $3, $4, $5, $6, $6, 'FUNDED')
         RETURNING id::text, project_id, employer_id, freelancer_id, amount::text, held::text, released::text, returned::text, status, version`,
        [id, project, caller.id, freelancer, m.currency, m.amount],
      );
      return reply(r.rows[0]);
    });
  }),
  ReleaseMilestone: unary((req, caller) => settle(req, caller, 'release')),
  CancelMilestone: unary((req, caller) => settle(req, caller, 'cancel')),
  GetMilestone: unary(async (req) => {
    const r = await pool.query(
      'SELECT id::text, project_id, employer_id, freelancer_id, amount::text, held::text, released::text, returned::text, status, version FROM milestones WHERE id = $1',
      [v.requireMilestoneId(req.milestone_id)],
    );
    if (!r.rows[0]) throw new NotFound('MILESTONE_NOT_FOUND', 'no such milestone');
    return reply(r.rows[0]);
  }),
  ListMilestones: unary(async (_req, caller) => {
    const r = await pool.query(
      'SELECT id::text, project_id, employer_id, freelancer_id, amount::text, held::text, released::text, returned::text, status, version FROM milestones WHERE employer_id = $1 ORDER BY created_at DESC LIMIT 20',
      [caller.id],
    );
    return { milestones: r.rows.map((m) => reply(m).milestone), next_page_token: '' };
  }),
});

const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
await c.connect();
await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
await c.query(`SET search_path TO "${schema}"`);
await c.query(readFileSync(new URL('./schema.sql', import.meta.url), 'utf8'));
await c.end();
server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
});
process.on('SIGTERM', () => server.tryShutdown(() => void pool.end().then(() => process.exit(0))));
