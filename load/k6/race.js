// The release/cancel race (same scenario, parameters and checks as `npm run race`):
// CONTENDERS VUs per milestone release (RELEASE_SHARE of them) or cancel (the rest) every
// milestone at once, each command sent DUPLICATES times with the same idempotency key.
// With DISPUTE_SHARE, that share of the milestones is disputed first (the freelancer claims
// everything, the employer proposes half): there the releasing VUs send the freelancer's
// AcceptSettlement instead, racing cancels the dispute must refuse.
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
const DISPUTE_SHARE = Number(__ENV.DISPUTE_SHARE || 0);
const DISPUTED = Math.round(MILESTONES * DISPUTE_SHARE);
const CENTS = Math.round(Number(AMOUNT) * 100);
const HALF = Math.floor(CENTS / 2);
const money = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;

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
  const freelancer = mint(FREELANCER);
  for (let i = 0; i < DISPUTED; i++) {
    const o = call('escrow.v1.MilestoneService/OpenDispute', freelancer, { milestone_id: ids[i], reason: 'race', claimed_amount: usd(AMOUNT), idempotency_key: `${PREFIX}-dispute-${i}` });
    const p = call('escrow.v1.MilestoneService/ProposeSettlement', employer, { milestone_id: ids[i], freelancer_amount: usd(money(HALF)), idempotency_key: `${PREFIX}-propose-${i}` });
    if (o.status !== OK || p.status !== OK) throw new Error(`milestone ${i} not disputed: ${JSON.stringify(o.error || p.error)}`);
  }
  close();
  // The start barrier: every VU waits until the same instant.
  return { ids, startAt: Date.now() + 3000, prefix: PREFIX, employerId: EMPLOYER, freelancerId: FREELANCER, employer, freelancer };
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
  const settle = release && m < DISPUTED;
  for (let d = 0; d < DUPLICATES; d++) {
    const res = settle
      ? call('escrow.v1.MilestoneService/AcceptSettlement', data.freelancer, { milestone_id: id, idempotency_key: key })
      : release
        ? call('escrow.v1.MilestoneService/ReleaseMilestone', data.employer, { milestone_id: id, idempotency_key: key })
        : call('escrow.v1.MilestoneService/CancelMilestone', data.freelancer, { milestone_id: id, reason: 'race', idempotency_key: key });
    if (res.status === OK) won = true;
    else losers.add(1, { status: statusName(res) });
  }
  if (won) winners.add(1);
}

export function teardown(data) {
  // Per milestone: exactly one money-moving end (released, cancelled or resolved), nothing paid twice.
  let released = 0;
  let resolved = 0;
  for (const [i, id] of data.ids.entries()) {
    const r = call('escrow.v1.MilestoneService/GetMilestone', data.employer, { milestone_id: id });
    if (r.status !== OK) {
      doubleWins.add(1, { reason: 'unreadable' });
      continue;
    }
    const ms = r.message.milestone;
    const ends = ms.history.filter((h) => h.type === 'released' || h.type === 'cancelled' || h.type === 'resolved').length;
    const ok = check(ms, {
      'one end per milestone': () => ends === 1,
      'a disputed milestone ends by its settlement': () => (i < DISPUTED) === (ms.status === 'RESOLVED'),
      'nothing held': () => Number(ms.held.amount) === 0,
      'released + returned = amount': () => Math.round((Number(ms.released.amount) + Number(ms.returned.amount)) * 100) === Math.round(Number(ms.amount.amount) * 100),
    });
    if (!ok || ends !== 1) doubleWins.add(1);
    if (ms.status === 'RELEASED') released++;
    if (ms.status === 'RESOLVED') resolved++;
  }
  sleep(2); // The ledger follows the log a moment behind.
  const cents = CENTS;
  const cancelled = MILESTONES - released - resolved;
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
    'employer got back the cancelled and its shares': () => Math.round(Number(emp.available.amount) * 100) === cancelled * cents + resolved * (cents - HALF),
    'freelancer got the released and its shares': () => Math.round(Number(fl.available.amount) * 100) === released * cents + resolved * HALF,
    'nothing left in escrow': () => Number(emp.held.amount) === 0 && Number(fl.incoming.amount) === 0,
  });
  if (!balanced) unbalanced.add(1);
  close();
}
