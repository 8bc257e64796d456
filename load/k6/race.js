// The release/cancel race (same scenario, parameters and checks as `npm run race`):
// CONTENDERS VUs per milestone release (RELEASE_SHARE of them) or cancel (the rest) every
// milestone at once, each command sent DUPLICATES times with the same idempotency key.
// Fails if any milestone has more than one winner or the final balances do not add up.
//   k6 run -e TARGET=127.0.0.1:50051 -e AUTH_JWT_SECRET=... -e MILESTONES=200 -e CONTENDERS=20 load/k6/race.js
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';
import { OK, call, close, int, mint, newPrefix, statusName, usd } from './lib.js';

const MILESTONES = int('MILESTONES', 200, 100000);
const CONTENDERS = int('CONTENDERS', 20, 1000);
const DUPLICATES = int('DUPLICATES', 1, 20);
const RELEASE_SHARE = Number(__ENV.RELEASE_SHARE || 0.5);
const AMOUNT = __ENV.AMOUNT || '10.00';

const winners = new Counter('race_winners');
const doubleWins = new Counter('race_double_wins');
const unbalanced = new Counter('race_unbalanced_balances');
const losers = new Counter('race_losers');

export const options = {
  setupTimeout: '10m',
  teardownTimeout: '10m',
  scenarios: {
    race: { executor: 'per-vu-iterations', vus: CONTENDERS, iterations: MILESTONES, maxDuration: __ENV.DURATION || '10m' },
  },
  thresholds: {
    race_double_wins: ['count==0'],
    race_unbalanced_balances: ['count==0'],
    race_winners: ['count>0', `count<=${MILESTONES}`],
  },
};

export function setup() {
  const PREFIX = newPrefix();
  const EMPLOYER = `${PREFIX}-emp`;
  const FREELANCER = `${PREFIX}-fl`;
  const payments = mint(`${PREFIX}-payments`, ['payments']);
  const employer = mint(EMPLOYER);
  const cents = Math.round(Number(AMOUNT) * 100) * MILESTONES;
  const dep = call('escrow.v1.AccountService/Deposit', payments, {
    user_id: EMPLOYER,
    amount: usd(`${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`),
    external_reference: `${PREFIX}-deposit`,
  });
  if (dep.status !== OK) throw new Error(`deposit failed: ${JSON.stringify(dep.error)}`);
  const ids = [];
  for (let i = 0; i < MILESTONES; i++) {
    const r = call('escrow.v1.MilestoneService/CreateMilestone', employer, {
      project_id: `${PREFIX}-project`,
      freelancer_id: FREELANCER,
      amount: usd(AMOUNT),
      description: `race ${i}`,
      idempotency_key: `${PREFIX}-create-${i}`,
    });
    if (r.status !== OK || r.message.milestone.status !== 'FUNDED') throw new Error(`milestone ${i} not funded: ${JSON.stringify(r.error || r.message)}`);
    ids.push(r.message.milestone.id);
  }
  close();
  // The start barrier: every VU waits until the same instant.
  return { ids, startAt: Date.now() + 3000, prefix: PREFIX, employerId: EMPLOYER, freelancerId: FREELANCER, employer, freelancer: mint(FREELANCER) };
}

export default function (data) {
  const wait = data.startAt - Date.now();
  if (exec.vu.iterationInScenario === 0 && wait > 0) sleep(wait / 1000);
  const contender = exec.vu.idInTest - 1;
  const m = exec.vu.iterationInScenario;
  const id = data.ids[m];
  const release = contender < Math.round(CONTENDERS * RELEASE_SHARE);
  const key = `${data.prefix}-${release ? 'release' : 'cancel'}-${m}-${contender}`;
  let won = false;
  for (let d = 0; d < DUPLICATES; d++) {
    const res = release
      ? call('escrow.v1.MilestoneService/ReleaseMilestone', data.employer, { milestone_id: id, idempotency_key: key })
      : call('escrow.v1.MilestoneService/CancelMilestone', data.freelancer, { milestone_id: id, reason: 'race', idempotency_key: key });
    if (res.status === OK) won = true;
    else losers.add(1, { status: statusName(res) });
  }
  if (won) winners.add(1);
}

export function teardown(data) {
  // Per milestone: exactly one money-moving end (released or cancelled), nothing paid twice.
  let released = 0;
  for (const id of data.ids) {
    const r = call('escrow.v1.MilestoneService/GetMilestone', data.employer, { milestone_id: id });
    if (r.status !== OK) {
      doubleWins.add(1, { reason: 'unreadable' });
      continue;
    }
    const ms = r.message.milestone;
    const ends = ms.history.filter((h) => h.type === 'released' || h.type === 'cancelled').length;
    const ok = check(ms, {
      'one end per milestone': () => ends === 1,
      'nothing held': () => Number(ms.held.amount) === 0,
      'released + returned = amount': () => Math.round((Number(ms.released.amount) + Number(ms.returned.amount)) * 100) === Math.round(Number(ms.amount.amount) * 100),
    });
    if (!ok || ends !== 1) doubleWins.add(1);
    if (ms.status === 'RELEASED') released++;
  }
  sleep(2); // The ledger follows the log a moment behind.
  const cents = Math.round(Number(AMOUNT) * 100);
  const empRes = call('escrow.v1.AccountService/GetBalance', data.employer, { user_id: data.employerId, currency_code: 'USD' });
  const flRes = call('escrow.v1.AccountService/GetBalance', data.freelancer, { user_id: data.freelancerId, currency_code: 'USD' });
  if (empRes.status !== OK || flRes.status !== OK) {
    unbalanced.add(1);
    close();
    return;
  }
  const emp = empRes.message;
  const fl = flRes.message;
  const balanced = check(null, {
    'employer got back the cancelled': () => Math.round(Number(emp.available.amount) * 100) === (MILESTONES - released) * cents,
    'freelancer got the released': () => Math.round(Number(fl.available.amount) * 100) === released * cents,
    'nothing left in escrow': () => Number(emp.held.amount) === 0 && Number(fl.incoming.amount) === 0,
  });
  if (!balanced) unbalanced.add(1);
  close();
}
