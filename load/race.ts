import * as grpc from '@grpc/grpc-js';

/**
 * The release/cancel race, as the k6 race script and the race harness run it: many
 * contenders release and cancel the same funded milestones at once; exactly one may win each.
 * Written against a minimal client interface so tests and the harness share it.
 */

export interface RaceClient {
  m(method: string, user: string, request: object): Promise<any>;
  a(method: string, user: string | { id: string; roles: string[] }, request: object): Promise<any>;
}

export interface RaceOptions {
  /** Clients of the gateways to spread calls over (round robin). */
  clients: RaceClient[];
  milestones: number;
  /** Releases per milestone; as many cancels run against them. */
  contenders: number;
  /** Amount of each milestone, in USD. */
  amount: string;
  /** Makes user ids and keys unique to this run. */
  prefix: string;
}

export interface RaceResult {
  milestoneIds: string[];
  employer: string;
  freelancer: string;
  /** Winners per milestone -> how many milestones had that many. */
  winnersHistogram: Record<string, number>;
  /** Which command won, per milestone. */
  winners: Record<string, 'release' | 'cancel'>;
  /** Loser gRPC status names -> count. */
  loserCodes: Record<string, number>;
  commands: number;
  elapsedMs: number;
}

export async function runRace(o: RaceOptions): Promise<RaceResult> {
  const employer = `${o.prefix}-emp`;
  const freelancer = `${o.prefix}-fl`;
  const pick = (i: number) => o.clients[i % o.clients.length]!;
  const total = (Number(o.amount) * o.milestones).toFixed(2);
  await pick(0).a('Deposit', { id: `${o.prefix}-payments`, roles: ['payments'] }, {
    user_id: employer,
    amount: { currency_code: 'USD', amount: total },
    external_reference: `${o.prefix}-deposit`,
  });
  const milestoneIds: string[] = [];
  for (let i = 0; i < o.milestones; i++) {
    const r = await pick(i).m('CreateMilestone', employer, {
      project_id: `${o.prefix}-project`,
      freelancer_id: freelancer,
      amount: { currency_code: 'USD', amount: o.amount },
      description: `race ${i}`,
      idempotency_key: `${o.prefix}-create-${i}`,
    });
    if (r.milestone.status !== 'FUNDED') throw new Error(`milestone ${i} is ${r.milestone.status}, not FUNDED`);
    milestoneIds.push(r.milestone.id);
  }

  const winners: Record<string, 'release' | 'cancel'> = {};
  const winCount = new Map<string, number>();
  const loserCodes: Record<string, number> = {};
  let commands = 0;
  const started = Date.now();
  // A start barrier: every call is built first, then all are fired in the same tick.
  const calls: (() => Promise<void>)[] = [];
  milestoneIds.forEach((id, mi) => {
    for (let c = 0; c < o.contenders; c++) {
      for (const kind of ['release', 'cancel'] as const) {
        const client = pick(mi + c + (kind === 'cancel' ? 1 : 0));
        calls.push(async () => {
          commands++;
          try {
            if (kind === 'release') await client.m('ReleaseMilestone', employer, { milestone_id: id, idempotency_key: `${o.prefix}-rel-${mi}-${c}` });
            else await client.m('CancelMilestone', freelancer, { milestone_id: id, reason: 'race', idempotency_key: `${o.prefix}-can-${mi}-${c}` });
            winners[id] = kind;
            winCount.set(id, (winCount.get(id) ?? 0) + 1);
          } catch (err) {
            const name = grpc.status[(err as { code: number }).code] ?? 'UNKNOWN';
            loserCodes[name] = (loserCodes[name] ?? 0) + 1;
          }
        });
      }
    }
  });
  await Promise.all(calls.map((f) => f()));
  const winnersHistogram: Record<string, number> = {};
  for (const id of milestoneIds) {
    const n = String(winCount.get(id) ?? 0);
    winnersHistogram[n] = (winnersHistogram[n] ?? 0) + 1;
  }
  return { milestoneIds, employer, freelancer, winnersHistogram, winners, loserCodes, commands, elapsedMs: Date.now() - started };
}
