// Mixed workload at a constant arrival rate (the benchmark's mixed workload): deposit,
// create, release, cancel, get and list, with thresholds on errors and latency.
//   k6 run -e TARGET=127.0.0.1:50051 -e AUTH_JWT_SECRET=... -e RATE=500 -e DURATION=60s load/k6/throughput.js
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import exec from 'k6/execution';
import { OK, call, close, int, mint, newPrefix, usd } from './lib.js';

const RATE = int('RATE', 200, 100000);
const USERS = int('USERS', 50, 10000);
const errors = new Rate('escrow_errors');

export const options = {
  setupTimeout: '5m',
  scenarios: {
    mixed: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Math.min(1000, RATE),
      maxVUs: Math.min(5000, RATE * 4),
    },
  },
  // Scoped to the scenario: setup's seeding calls are not part of the measured load.
  thresholds: {
    'escrow_errors{scenario:mixed}': ['rate<0.01'],
    // Latency targets, P95_MS and P99_MS (50 and 100 by default): a correctness run (CI) lifts them.
    'grpc_req_duration{scenario:mixed}': [`p(95)<${int('P95_MS', 50, 600000)}`, `p(99)<${int('P99_MS', 100, 600000)}`],
  },
};

export function setup() {
  const PREFIX = newPrefix();
  const payments = mint(`${PREFIX}-payments`, ['payments']);
  for (let u = 0; u < USERS; u++) {
    const r = call('escrow.v1.AccountService/Deposit', payments, {
      user_id: `${PREFIX}-emp-${u}`,
      amount: usd('1000000.00'),
      external_reference: `${PREFIX}-seed-${u}`,
    });
    if (r.status !== OK) throw new Error(`seeding failed: ${JSON.stringify(r.error)}`);
  }
  close();
  return { prefix: PREFIX };
}

// Each VU keeps the milestones it created (funded ones only), to release, cancel and read them later.
/** @type {{ id: string, employer: string, freelancer: string }[]} */
const mine = [];
// Tokens are minted once per user and VU, not once per call.
/** @type {Record<string, string>} */
const tokens = {};
/** @param {string} user @param {string[]} [roles] */
function token(user, roles) {
  return tokens[user] || (tokens[user] = mint(user, roles));
}

/** @param {{ prefix: string }} data */
export default function (data) {
  const PREFIX = data.prefix;
  const u = exec.scenario.iterationInTest % USERS;
  const employer = `${PREFIX}-emp-${u}`;
  const freelancer = `${PREFIX}-fl-${u}`;
  const key = `${PREFIX}-${exec.scenario.iterationInTest}`;
  const pick = Math.random();
  let res;
  if (pick < 0.05) {
    res = call('escrow.v1.AccountService/Deposit', token(`${PREFIX}-payments`, ['payments']), {
      user_id: employer,
      amount: usd('10.00'),
      external_reference: key,
    });
  } else if (pick < 0.35 || mine.length === 0) {
    res = call('escrow.v1.MilestoneService/CreateMilestone', token(employer), {
      project_id: `${PREFIX}-p-${u}`,
      freelancer_id: freelancer,
      amount: usd('1.00'),
      description: 'mixed',
      idempotency_key: key,
    });
    const created = res.status === OK ? /** @type {any} */ (res.message).milestone : null;
    if (created && created.status === 'FUNDED') mine.push({ id: created.id, employer, freelancer });
  } else if (pick < 0.55) {
    const m = /** @type {{ id: string, employer: string, freelancer: string }} */ (mine.pop());
    res = call('escrow.v1.MilestoneService/ReleaseMilestone', token(m.employer), { milestone_id: m.id, idempotency_key: key });
  } else if (pick < 0.65) {
    const m = /** @type {{ id: string, employer: string, freelancer: string }} */ (mine.pop());
    res = call('escrow.v1.MilestoneService/CancelMilestone', token(m.freelancer), {
      milestone_id: m.id,
      reason: 'mixed',
      idempotency_key: key,
    });
  } else if (pick < 0.9) {
    const m = mine[Math.floor(Math.random() * mine.length)];
    res = call('escrow.v1.MilestoneService/GetMilestone', token(m.employer), { milestone_id: m.id });
  } else {
    res = call('escrow.v1.MilestoneService/ListMilestones', token(employer), { direction: 'OUTGOING', page_size: 20 });
  }
  const ok = check(res, { 'status OK': (r) => r.status === OK });
  errors.add(!ok);
}
