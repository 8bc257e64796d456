// The release/cancel race (same scenario, parameters and checks as `npm run race`):
// CONTENDERS VUs per milestone release (RELEASE_SHARE of them) or cancel (the rest) every
// milestone at once, each command sent DUPLICATES times at once with the same idempotency key.
// Every milestone has its own start: milestone m is raced at startAt + m * SLOT_MS by every
// VU, so later milestones are raced as hard as the first. With DISPUTE_SHARE, that share of
// the milestones is disputed first (the freelancer claims everything, the employer proposes
// half): there the releasing VUs send the freelancer's AcceptSettlement instead, racing
// cancels the dispute must refuse. Fails if any milestone has more than one winner or the
// final balances do not add up; milestones an interrupted run never raced are counted apart.
//   k6 run -e TARGET=127.0.0.1:50051 -e AUTH_JWT_SECRET=... -e MILESTONES=200 -e CONTENDERS=20 load/k6/race.js
// With --out json=calls.json, every call is a race_calls sample tagged with its milestone,
// caller, RPC, key and answer: `npm run check-history -- --history calls.json` proves them
// against the event log.
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';
import { OK, call, callAsync, close, int, mint, money, newPrefix, share, statusName, usd } from './lib.js';

const MILESTONES = int('MILESTONES', 200, 100000);
const CONTENDERS = int('CONTENDERS', 20, 1000);
const DUPLICATES = int('DUPLICATES', 1, 20);
const RELEASE_SHARE = share('RELEASE_SHARE', 0.5);
const AMOUNT = __ENV.AMOUNT || '10.00';
const DISPUTE_SHARE = share('DISPUTE_SHARE', 0);
const DISPUTED = Math.round(MILESTONES * DISPUTE_SHARE);
const CENTS = Math.round(Number(AMOUNT) * 100);
const HALF = Math.floor(CENTS / 2);
/** Time between the starts of two milestones' races. */
const SLOT_MS = int('SLOT_MS', 250, 60000);
/** Milestones created at once in setup. */
const SETUP_BATCH = 50;

const winners = new Counter('race_winners');
const doubleWins = new Counter('race_double_wins');
const unraced = new Counter('race_unraced');
const unbalanced = new Counter('race_unbalanced_balances');
const losers = new Counter('race_losers');
const calls = new Counter('race_calls');

export const options = {
  // Setup creates MILESTONES in batches; 100000 at 50 at a time fits in this.
  setupTimeout: __ENV.SETUP_TIMEOUT || '30m',
  teardownTimeout: '30m',
  scenarios: {
    race: {
      executor: 'per-vu-iterations',
      vus: CONTENDERS,
      iterations: MILESTONES,
      // The race's own bound (not the throughput script's DURATION): every slot, and a minute more.
      maxDuration: __ENV.RACE_MAX_DURATION || `${Math.ceil((3000 + MILESTONES * SLOT_MS) / 1000) + 60}s`,
    },
  },
  thresholds: {
    race_double_wins: ['count==0'],
    race_unbalanced_balances: ['count==0'],
    race_winners: ['count>0', `count<=${MILESTONES}`],
  },
};

export async function setup() {
  const PREFIX = newPrefix();
  const EMPLOYER = `${PREFIX}-emp`;
  const FREELANCER = `${PREFIX}-fl`;
  const payments = mint(`${PREFIX}-payments`, ['payments']);
  const employer = mint(EMPLOYER);
  const freelancer = mint(FREELANCER);
  const dep = call('escrow.v1.AccountService/Deposit', payments, {
    user_id: EMPLOYER,
    amount: usd(money(CENTS * MILESTONES)),
    external_reference: `${PREFIX}-deposit`,
  });
  if (dep.status !== OK) throw new Error(`deposit failed: ${JSON.stringify(dep.error)}`);
  /** @type {string[]} */
  const ids = [];
  for (let first = 0; first < MILESTONES; first += SETUP_BATCH) {
    const batch = [];
    for (let i = first; i < Math.min(MILESTONES, first + SETUP_BATCH); i++) {
      batch.push(
        callAsync('escrow.v1.MilestoneService/CreateMilestone', employer, {
          project_id: `${PREFIX}-project`,
          freelancer_id: FREELANCER,
          amount: usd(AMOUNT),
          description: `race ${i}`,
          idempotency_key: `${PREFIX}-create-${i}`,
        }).then((r) => ({ i, r })),
      );
    }
    for (const { i, r } of await Promise.all(batch)) {
      if (r.status !== OK) throw new Error(`milestone ${i} not created: ${JSON.stringify(r.error)}`);
      const m = /** @type {any} */ (r.message).milestone;
      ids[i] = m.id;
      // An engine of an earlier version could answer PENDING_FUNDING: wait for the funding.
      for (let tries = 0; m.status === 'PENDING_FUNDING' && tries < 50; tries++) {
        sleep(0.2);
        const g = call('escrow.v1.MilestoneService/GetMilestone', employer, { milestone_id: m.id });
        if (g.status === OK) m.status = /** @type {any} */ (g.message).milestone.status;
      }
      if (m.status !== 'FUNDED') throw new Error(`milestone ${i} is ${m.status}, not FUNDED`);
    }
  }
  for (let i = 0; i < DISPUTED; i++) {
    const o = call('escrow.v1.MilestoneService/OpenDispute', freelancer, {
      milestone_id: ids[i],
      reason: 'race',
      claimed_amount: usd(AMOUNT),
      idempotency_key: `${PREFIX}-dispute-${i}`,
    });
    const p = call('escrow.v1.MilestoneService/ProposeSettlement', employer, {
      milestone_id: ids[i],
      freelancer_amount: usd(money(HALF)),
      idempotency_key: `${PREFIX}-propose-${i}`,
    });
    if (o.status !== OK || p.status !== OK) throw new Error(`milestone ${i} not disputed: ${JSON.stringify(o.error || p.error)}`);
  }
  close();
  return { ids, startAt: Date.now() + 3000, prefix: PREFIX, employerId: EMPLOYER, freelancerId: FREELANCER, employer, freelancer };
}

/** @param {{ ids: string[], startAt: number, prefix: string, employerId: string, freelancerId: string, employer: string, freelancer: string }} data */
export default async function (data) {
  const m = exec.vu.iterationInScenario;
  // The barrier of milestone m: every VU starts its contenders for it at the same instant.
  const wait = data.startAt + m * SLOT_MS - Date.now();
  if (wait > 0) sleep(wait / 1000);
  const contender = exec.vu.idInTest - 1;
  const id = data.ids[m];
  const release = contender < Math.round(CONTENDERS * RELEASE_SHARE);
  const settle = release && m < DISPUTED;
  const kind = settle ? 'settle' : release ? 'release' : 'cancel';
  const key = `${data.prefix}-${kind}-${m}-${contender}`;
  const [rpc, token, caller, request] = settle
    ? ['AcceptSettlement', data.freelancer, data.freelancerId, { milestone_id: id, idempotency_key: key }]
    : release
      ? ['ReleaseMilestone', data.employer, data.employerId, { milestone_id: id, idempotency_key: key }]
      : ['CancelMilestone', data.freelancer, data.freelancerId, { milestone_id: id, reason: 'race', idempotency_key: key }];
  // The copies go out at once, like a client retrying on another connection.
  const copies = [];
  for (let d = 0; d < DUPLICATES; d++) copies.push(callAsync(`escrow.v1.MilestoneService/${rpc}`, token, request));
  let won = false;
  for (const res of await Promise.all(copies)) {
    const code = statusName(res);
    const milestone = res.status === OK ? /** @type {any} */ (res.message).milestone : null;
    calls.add(1, {
      milestone: id,
      caller,
      rpc,
      key,
      code,
      status: milestone ? milestone.status : '',
      reason: res.status === OK ? '' : errorReason(res),
    });
    if (res.status === OK) won = true;
    else losers.add(1, { status: code });
  }
  if (won) winners.add(1);
}

/** The stable reason of a refusal, from its google.rpc.ErrorInfo detail, or ''. @param {any} res */
function errorReason(res) {
  const details = (res.error && res.error.details) || [];
  for (const d of details) if (d && d.reason) return String(d.reason);
  return '';
}

/** @param {{ ids: string[], employerId: string, freelancerId: string, employer: string, freelancer: string }} data */
export function teardown(data) {
  // Per milestone: exactly one money-moving end (released, cancelled or resolved), nothing paid twice.
  let released = 0;
  let resolved = 0;
  let cancelled = 0;
  for (const [i, id] of data.ids.entries()) {
    const r = call('escrow.v1.MilestoneService/GetMilestone', data.employer, { milestone_id: id });
    if (r.status !== OK) {
      doubleWins.add(1, { reason: 'unreadable' });
      continue;
    }
    const ms = /** @type {any} */ (r.message).milestone;
    const ends = ms.history.filter(
      (/** @type {{ type: string }} */ h) => h.type === 'released' || h.type === 'cancelled' || h.type === 'resolved',
    ).length;
    if (ends === 0) {
      // Never raced (the run was cut short): not a double win, and its money is still held.
      unraced.add(1);
      continue;
    }
    const ok = check(ms, {
      'one end per milestone': () => ends === 1,
      'a disputed milestone ends by its settlement': () => i < DISPUTED === (ms.status === 'RESOLVED'),
      'nothing held': () => Number(ms.held.amount) === 0,
      'released + returned = amount': () =>
        Math.round((Number(ms.released.amount) + Number(ms.returned.amount)) * 100) === Math.round(Number(ms.amount.amount) * 100),
    });
    if (!ok || ends !== 1) doubleWins.add(1);
    if (ms.status === 'RELEASED') released++;
    else if (ms.status === 'RESOLVED') resolved++;
    else if (ms.status === 'CANCELLED') cancelled++;
  }
  const unfinished = data.ids.length - released - resolved - cancelled;
  // The ledger follows the log a moment behind: read the balances until they settle (up to 10 s).
  let balanced = false;
  for (let tries = 0; tries < 20 && !balanced; tries++) {
    sleep(0.5);
    const empRes = call('escrow.v1.AccountService/GetBalance', data.employer, { user_id: data.employerId, currency_code: 'USD' });
    const flRes = call('escrow.v1.AccountService/GetBalance', data.freelancer, { user_id: data.freelancerId, currency_code: 'USD' });
    if (empRes.status !== OK || flRes.status !== OK) continue;
    const emp = /** @type {any} */ (empRes.message);
    const fl = /** @type {any} */ (flRes.message);
    balanced =
      Math.round(Number(emp.available.amount) * 100) === cancelled * CENTS + resolved * (CENTS - HALF) &&
      Math.round(Number(fl.available.amount) * 100) === released * CENTS + resolved * HALF &&
      Math.round(Number(emp.held.amount) * 100) === unfinished * CENTS;
  }
  check(null, { 'balances add up to the milestones’ ends': () => balanced });
  if (!balanced) unbalanced.add(1);
  close();
}
