import { eventId, scopedKey } from '../src/ids.js';
import type { User, Reply } from '../src/client.js';
import { elapsedMs, runBounded, summarize, type LatencySummary } from './stats.js';
import { failureOf, type CallRecord } from './history.js';

/**
 * The release/cancel race, the scenario of the k6 race script and of the race harness:
 * contenders release and cancel the same funded milestones at once, optionally each
 * command sent several times with the same idempotency key; exactly one command (key) may
 * win each milestone. The contenders of a milestone are shuffled and sent together (a
 * barrier per milestone: all of its commands leave in the same turn), so every kind can win
 * and a bug that lets a late command overtake a won one cannot hide behind a fixed order. With a dispute share, that share of the milestones is disputed first
 * (the freelancer claims everything, the employer proposes half): there the releasing
 * contenders become the freelancer's AcceptSettlement, racing releases and cancels that a
 * disputed milestone must refuse, and exactly one split may be posted.
 */

export interface RaceClient {
  m(method: string, user: User, request: object): Promise<Reply>;
  a(method: string, user: User, request: object): Promise<Reply>;
}

export interface RaceOptions {
  /** Clients of the gateways to spread calls over (round robin). */
  clients: RaceClient[];
  milestones: number;
  /** Contenders per milestone (releases + cancels). */
  contenders: number;
  /** Share of the contenders that release (the rest cancel). Default 0.5. */
  releaseShare?: number;
  /** Share of the milestones disputed before the race (settlement race). Default 0. */
  disputeShare?: number;
  /**
   * Share of the contenders that send commands which do not end a milestone, in turn: a partial
   * release (a quarter of the amount spread over the contenders, so they never release it all),
   * the employer's RequestCancellation and the freelancer's RejectCancellation. They race the
   * ending commands; their answers are proven like the others'. Default 0.
   */
  extraShare?: number;
  /** Copies of each command, sent at once with the same idempotency key. Default 1. */
  duplicates?: number;
  /** Most commands in flight during the race (whole milestones at a time). Default: all at once. */
  concurrency?: number;
  /** No race command is started after this long. Default 120 s. */
  durationMs?: number;
  /** Amount of each milestone, in USD. */
  amount: string;
  /** Makes user ids and keys unique to this run. */
  prefix: string;
  /** Called every `progressEveryMs` (default 3 s) while the race runs: commands answered so far, by outcome. */
  onProgress?: (p: { answered: number; sent: number; elapsedMs: number; byCode: Record<string, number> }) => void;
  progressEveryMs?: number;
}

export type WinKind = 'release' | 'cancel' | 'settle';
/** Contenders that move a milestone without ending it. */
export type ExtraKind = 'partial' | 'request_cancellation' | 'reject_cancellation';
type Kind = WinKind | ExtraKind;
const EXTRAS: ExtraKind[] = ['partial', 'request_cancellation', 'reject_cancellation'];
const isWin = (k: Kind): k is WinKind => k === 'release' || k === 'cancel' || k === 'settle';

export interface Win {
  milestoneId: string;
  kind: WinKind;
  eventId: string;
  /** Epoch ms when the winning answer arrived. */
  ackedAt: number;
}

export interface RaceResult {
  milestoneIds: string[];
  /** The milestones disputed before the race: only a settlement may win them. */
  disputedIds: string[];
  employer: string;
  freelancer: string;
  /** Distinct winning keys per milestone -> how many milestones had that many. */
  winnersHistogram: Record<string, number>;
  winners: Record<string, WinKind>;
  wins: Win[];
  /** Loser gRPC status names -> count. */
  loserCodes: Record<string, number>;
  /** Milestones won by each kind, and how many milestones each kind contended for (a disputed one only counts for `settle`). */
  winnerKinds: Partial<Record<WinKind, number>>;
  contendedKinds: Partial<Record<WinKind, number>>;
  commands: number;
  elapsedMs: number;
  latencyMs: LatencySummary;
  commandsPerSecond: number;
  /** Every race call and its answer, for the history checker (load/history.ts). */
  calls: CallRecord[];
}

const BOUNDS = { milestones: 100_000, contenders: 1_000, duplicates: 20, concurrency: 10_000, durationMs: 600_000 };

export async function runRace(o: RaceOptions): Promise<RaceResult> {
  if (o.milestones > BOUNDS.milestones || o.contenders > BOUNDS.contenders || (o.duplicates ?? 1) > BOUNDS.duplicates) {
    throw new Error(`race options above the bounds ${JSON.stringify(BOUNDS)}`);
  }
  const duplicates = Math.max(1, o.duplicates ?? 1);
  const extras = Math.min(o.contenders - 1, Math.round(o.contenders * (o.extraShare ?? 0)));
  // Of the contenders left, the release share releases (or settles), the rest cancel.
  const releases = Math.round((o.contenders - extras) * (o.releaseShare ?? 0.5));
  const partialCents = Math.max(1, Math.floor((Math.round(Number(o.amount) * 100) / 4 / Math.max(1, extras)) | 0));
  const partial = `${Math.floor(partialCents / 100)}.${String(partialCents % 100).padStart(2, '0')}`;
  const employer = `${o.prefix}-emp`;
  const freelancer = `${o.prefix}-fl`;
  const pick = (i: number) => o.clients[i % o.clients.length]!;
  const milestoneIds = await seedMilestones(o, employer, freelancer);

  const wonBy = new Map<string, Set<string>>();
  const winners: Record<string, WinKind> = {};
  const disputed = new Set(milestoneIds.slice(0, Math.round(milestoneIds.length * (o.disputeShare ?? 0))));
  await disputeMilestones(o, [...disputed], employer, freelancer);
  const wins: Win[] = [];
  const loserCodes: Record<string, number> = {};
  const latencies: number[] = [];
  const calls: CallRecord[] = [];
  // Both parties' tokens minted and verified on every gateway before the race: a first call
  // waits for that (the gateway remembers verified tokens), which would hand every race of
  // the first milestones to the party whose token was ready.
  await Promise.all(
    o.clients.flatMap((c) => [employer, freelancer].map((u) => c.a('GetBalance', u, { user_id: u, currency_code: 'USD' }).catch(() => {}))),
  );
  const contendedKinds: Partial<Record<WinKind, number>> = {};
  // One task per milestone: its contenders, shuffled, all sent at once.
  const tasks = milestoneIds.map((id, mi) => {
    const contenders = Array.from({ length: o.contenders }, (_, c) => ({
      c,
      kind: (c < extras ? EXTRAS[c % EXTRAS.length] : c - extras < releases ? (disputed.has(id) ? 'settle' : 'release') : 'cancel') as Kind,
    }));
    shuffle(contenders);
    for (const kind of new Set(contenders.map((x) => x.kind).filter(isWin))) {
      // On a disputed milestone only the settlement can win: releases and cancels there are refusals to check, not contenders.
      if (!disputed.has(id) || kind === 'settle') contendedKinds[kind] = (contendedKinds[kind] ?? 0) + 1;
    }
    return async () => {
      const sends: Promise<void>[] = [];
      for (const { c, kind } of contenders) {
        const key = `${o.prefix}-${kind}-${mi}-${c}`;
        const by = kind === 'release' || kind === 'partial' || kind === 'request_cancellation' ? employer : freelancer;
        for (let d = 0; d < duplicates; d++) {
          const client = pick(mi + c + d);
          const t0 = process.hrtime.bigint();
          const sent = Date.now();
          const [rpc, request] = command(kind, id, key, partial);
          const call = client.m(rpc, by, request);
          sends.push(
            call.then(
              (answer: { milestone?: { status?: string; version?: number } }) => {
                latencies.push(elapsedMs(t0));
                calls.push({
                  t: Date.now(),
                  sent,
                  caller: by,
                  rpc,
                  milestoneId: id,
                  key,
                  code: 'OK',
                  status: answer.milestone?.status,
                  version: answer.milestone?.version,
                });
                if (!isWin(kind)) return;
                let keys = wonBy.get(id);
                if (!keys) wonBy.set(id, (keys = new Set()));
                if (!keys.has(key)) {
                  keys.add(key);
                  winners[id] = kind;
                  wins.push({ milestoneId: id, kind, eventId: eventId('milestone', id, scopedKey(by, key)), ackedAt: Date.now() });
                }
              },
              (err: unknown) => {
                latencies.push(elapsedMs(t0));
                const failure = failureOf(err);
                calls.push({ t: Date.now(), sent, caller: by, rpc, milestoneId: id, key, ...failure });
                loserCodes[failure.code] = (loserCodes[failure.code] ?? 0) + 1;
              },
            ),
          );
        }
      }
      await Promise.all(sends);
    };
  });
  const perMilestone = o.contenders * duplicates;
  const started = Date.now();
  const progress = o.onProgress
    ? setInterval(() => {
        const byCode: Record<string, number> = {};
        for (const c of calls) byCode[c.code] = (byCode[c.code] ?? 0) + 1;
        o.onProgress!({ answered: calls.length, sent: milestoneIds.length * perMilestone, elapsedMs: Date.now() - started, byCode });
      }, o.progressEveryMs ?? 3_000)
    : null;
  const milestonesRun = await runBounded(
    tasks,
    Math.max(1, Math.floor((o.concurrency ?? tasks.length * perMilestone) / perMilestone)),
    started + Math.min(o.durationMs ?? 120_000, BOUNDS.durationMs),
  );
  if (progress) clearInterval(progress);
  const commands = milestonesRun * perMilestone;
  const elapsed = Date.now() - started;
  const winnerKinds: Partial<Record<WinKind, number>> = {};
  for (const kind of Object.values(winners)) winnerKinds[kind] = (winnerKinds[kind] ?? 0) + 1;
  const winnersHistogram: Record<string, number> = {};
  for (const id of milestoneIds) {
    const n = String(wonBy.get(id)?.size ?? 0);
    winnersHistogram[n] = (winnersHistogram[n] ?? 0) + 1;
  }
  return {
    milestoneIds,
    disputedIds: [...disputed],
    employer,
    freelancer,
    winnersHistogram,
    winners,
    wins,
    loserCodes,
    winnerKinds,
    contendedKinds,
    commands,
    elapsedMs: elapsed,
    latencyMs: summarize(latencies),
    commandsPerSecond: Math.round((commands / Math.max(1, elapsed)) * 1000),
    calls,
  };
}

/** The RPC and request a contender of `kind` sends. */
function command(kind: Kind, id: string, key: string, partial: string): [string, object] {
  switch (kind) {
    case 'release':
      return ['ReleaseMilestone', { milestone_id: id, idempotency_key: key }];
    case 'settle':
      return ['AcceptSettlement', { milestone_id: id, idempotency_key: key }];
    case 'cancel':
      return ['CancelMilestone', { milestone_id: id, reason: 'race', idempotency_key: key }];
    case 'partial':
      return ['ReleaseMilestone', { milestone_id: id, amount: { currency_code: 'USD', amount: partial }, idempotency_key: key }];
    case 'request_cancellation':
      return ['RequestCancellation', { milestone_id: id, reason_code: 'NO_LONGER_NEEDED', reason: 'race', idempotency_key: key }];
    case 'reject_cancellation':
      return ['RejectCancellation', { milestone_id: id, idempotency_key: key }];
  }
}

/**
 * The kinds that won less than `minShare` of the milestones they contended for: with
 * contenders shuffled, each kind of an even race wins about its share, so a kind that never
 * wins points at an order the harness or the engine imposes. Only kinds that contended for
 * at least 20 milestones are judged.
 */
export function unfairKinds(
  r: Pick<RaceResult, 'winnerKinds' | 'contendedKinds'>,
  minShare: number,
): { kind: WinKind; won: number; contended: number }[] {
  return (Object.entries(r.contendedKinds) as [WinKind, number][])
    .filter(([, contended]) => contended >= 20)
    .map(([kind, contended]) => ({ kind, won: r.winnerKinds[kind] ?? 0, contended }))
    .filter((k) => k.won < minShare * k.contended);
}

function shuffle(xs: unknown[]): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}

/** Puts milestones into dispute: the freelancer claims everything, the employer proposes half. */
async function disputeMilestones(o: RaceOptions, ids: string[], employer: string, freelancer: string): Promise<void> {
  const pick = (i: number) => o.clients[i % o.clients.length]!;
  const cents = Math.round(Number(o.amount) * 100);
  const half = `${Math.floor(cents / 200)}.${String(Math.floor(cents / 2) % 100).padStart(2, '0')}`;
  const tasks = ids.map((id, i) => async () => {
    await pick(i).m('OpenDispute', freelancer, {
      milestone_id: id,
      reason: 'race',
      claimed_amount: { currency_code: 'USD', amount: o.amount },
      idempotency_key: `${o.prefix}-dispute-${i}`,
    });
    await pick(i).m('ProposeSettlement', employer, {
      milestone_id: id,
      freelancer_amount: { currency_code: 'USD', amount: half },
      idempotency_key: `${o.prefix}-propose-${i}`,
    });
  });
  await runBounded(tasks, 64);
}

/** Deposits enough for the employer and creates the funded milestones of the race. */
async function seedMilestones(o: RaceOptions, employer: string, freelancer: string): Promise<string[]> {
  const pick = (i: number) => o.clients[i % o.clients.length]!;
  const cents = Math.round(Number(o.amount) * 100) * o.milestones;
  await pick(0).a(
    'Deposit',
    { id: `${o.prefix}-payments`, roles: ['payments'] },
    {
      user_id: employer,
      amount: { currency_code: 'USD', amount: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}` },
      external_reference: `${o.prefix}-deposit`,
    },
  );
  const ids: string[] = new Array(o.milestones);
  const tasks = Array.from({ length: o.milestones }, (_, i) => async () => {
    const r = await pick(i).m('CreateMilestone', employer, {
      project_id: `${o.prefix}-project`,
      freelancer_id: freelancer,
      amount: { currency_code: 'USD', amount: o.amount },
      description: `race ${i}`,
      idempotency_key: `${o.prefix}-create-${i}`,
    });
    if (r.milestone.status !== 'FUNDED') throw new Error(`milestone ${i} is ${r.milestone.status}, not FUNDED`);
    ids[i] = r.milestone.id;
  });
  await runBounded(tasks, 64);
  return ids;
}

const TERMINAL: Record<WinKind, string> = { release: 'released', cancel: 'cancelled', settle: 'resolved' };

/**
 * The history checker: what the clients were told against what the log holds. For every
 * milestone of the race: its history has exactly one ending event, of the kind whose command
 * was answered as the winner (or none, if no command was), and its status agrees. Returns one
 * line per disagreement.
 */
export async function checkHistories(
  clients: RaceClient[],
  r: Pick<RaceResult, 'milestoneIds' | 'winners' | 'employer'>,
): Promise<string[]> {
  const problems: string[] = [];
  const tasks = r.milestoneIds.map((id, i) => async () => {
    const m = (await clients[i % clients.length]!.m('GetMilestone', r.employer, { milestone_id: id })).milestone;
    const endings = (m.history as { type: string }[]).filter((h) => Object.values(TERMINAL).includes(h.type));
    const told = r.winners[id];
    if (endings.length > 1) problems.push(`${id}: ${endings.length} ending events (${endings.map((e) => e.type).join(', ')})`);
    else if (!told && endings.length === 1) problems.push(`${id}: no client was told a command won, the log says ${endings[0]!.type}`);
    else if (told && endings[0]?.type !== TERMINAL[told])
      problems.push(`${id}: a client was told its ${told} won, the log says ${endings[0]?.type ?? 'nothing'}`);
    const status = { release: 'RELEASED', cancel: 'CANCELLED', settle: 'RESOLVED' }[told ?? 'release'];
    if (told && m.status !== status) problems.push(`${id}: told ${told}, status ${m.status}`);
  });
  await runBounded(tasks, 64);
  return problems;
}
