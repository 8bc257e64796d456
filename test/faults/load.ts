import { Decimal } from 'decimal.js';
import { statusName, type EscrowClient, type Reply } from '../../src/client.js';
import { sleep } from '../../tools/processes.js';
import { failureOf, type CallRecord } from '../../load/history.js';

/**
 * The race load every fault runs under: lanes that create a funded milestone and then race
 * the employer's release against the freelancer's cancel on it, retrying each command with
 * the same idempotency key (on the next gateway) while it fails for a reason a retry can
 * cure. Exactly one of the two must win. It records what a client would see.
 */

const RETRYABLE = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'RESOURCE_EXHAUSTED', 'CANCELLED', 'UNKNOWN', 'INTERNAL']);

export interface Settled {
  id: string;
  kind: 'release' | 'cancel';
  /** Status of every successful answer to the settling command, retries included. */
  answers: string[];
}

export class FaultLoad {
  sent = 0;
  succeeded = 0;
  failed: Record<string, number> = {};
  failureLatencyMs: number[] = [];
  moneyMoved = new Decimal(0);
  settled: Settled[] = [];
  /** Every answer to a milestone command, retries included, for the history checker (load/history.ts). */
  calls: CallRecord[] = [];
  lastSuccessAt = 0;
  /** The longest time without any successful answer since `markWindow()` (ms): how long clients saw the engine unavailable. */
  longestGapMs = 0;
  private stopping = false;
  private lanes: Promise<void>[] = [];
  private next = 0;
  readonly employer: string;
  readonly freelancer: string;

  constructor(
    private readonly clients: EscrowClient[],
    /**
     * `patienceMs`: how long one command is retried (every 100 ms, rotating gateways) before
     * the lane gives up and fails the test (60 s: longer than any outage a scenario makes,
     * so a give-up means the engine did not come back; each scenario bounds its recovery itself).
     */
    private readonly o: { prefix: string; lanes: number; amount: string; patienceMs?: number },
  ) {
    this.employer = `${o.prefix}-emp`;
    this.freelancer = `${o.prefix}-fl`;
  }

  /**
   * Deposits the employer's money and waits until the ledger posted it (the deposit repeated
   * under its reference answers APPLIED then): a ledger still recovering from the fault would
   * otherwise refuse the first creates for funds, which is no finding of the load.
   */
  async seed(total: string): Promise<void> {
    await this.call(
      0,
      (c) =>
        c.a(
          'Deposit',
          { id: `${this.o.prefix}-pay`, roles: ['payments'] },
          {
            user_id: this.employer,
            amount: { currency_code: 'USD', amount: total },
            external_reference: `${this.o.prefix}-seed`,
          },
        ),
      (r) => (r as { status?: string }).status === 'APPLIED',
    );
  }

  start(): void {
    this.lanes = Array.from({ length: this.o.lanes }, (_, lane) => this.lane(lane));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.lanes);
  }

  /** Calls until success or a final refusal; rotates gateways between attempts. `record` names a milestone command, whose every answer is kept. */
  private async call<T>(
    start: number,
    fn: (c: EscrowClient) => Promise<T>,
    done: (r: T) => boolean = () => true,
    record?: { caller: string; rpc: string; key: string; milestoneId?: string },
  ): Promise<T | null> {
    const until = Date.now() + (this.o.patienceMs ?? 60_000);
    let last = '';
    let attempt = 0;
    for (; attempt === 0 || Date.now() < until; attempt++) {
      const client = this.clients[(start + attempt) % this.clients.length]!;
      this.sent++;
      const t0 = Date.now();
      try {
        const r = await fn(client);
        this.succeeded++;
        if (this.lastSuccessAt > 0) this.longestGapMs = Math.max(this.longestGapMs, Date.now() - this.lastSuccessAt);
        this.lastSuccessAt = Date.now();
        const m = (r as { milestone?: { id: string; status: string; version: number } }).milestone;
        if (record && m)
          this.calls.push({
            t: Date.now(),
            sent: t0,
            caller: record.caller,
            rpc: record.rpc,
            milestoneId: m.id,
            key: record.key,
            code: 'OK',
            status: m.status,
            version: m.version,
          });
        if (done(r)) return r;
      } catch (err) {
        const code = statusName(err);
        last = `${code} ${(err as { reason?: string }).reason ?? ''} ${(err as Partial<Error>).message ?? ''}`.trim();
        this.failed[code] = (this.failed[code] ?? 0) + 1;
        this.failureLatencyMs.push(Date.now() - t0);
        if (record?.milestoneId)
          this.calls.push({
            t: Date.now(),
            sent: t0,
            caller: record.caller,
            rpc: record.rpc,
            milestoneId: record.milestoneId,
            key: record.key,
            ...failureOf(err),
          });
        if (!RETRYABLE.has(code)) throw err;
      }
      await sleep(100);
    }
    throw new Error(
      `gave up after ${attempt} attempts in ${this.o.patienceMs ?? 60_000} ms${record ? ` of ${record.rpc} ${record.key}` : ''}; the last answer: ${last}`,
    );
  }

  /** One contender: its answer if it won, null if it lost (a final FAILED_PRECONDITION). */
  private async contend(
    start: number,
    fn: (c: EscrowClient) => Promise<Reply>,
    record: { caller: string; rpc: string; key: string; milestoneId: string },
  ): Promise<Reply> {
    try {
      return await this.call(start, fn, undefined, record);
    } catch (err) {
      if (statusName(err) === 'FAILED_PRECONDITION') return null;
      throw err;
    }
  }

  private async lane(lane: number): Promise<void> {
    while (!this.stopping) {
      const i = this.next++;
      const create = await this.call(
        lane + i,
        (c) =>
          c.m('CreateMilestone', this.employer, {
            project_id: `${this.o.prefix}-p`,
            freelancer_id: this.freelancer,
            amount: { currency_code: 'USD', amount: this.o.amount },
            idempotency_key: `${this.o.prefix}-create-${i}`,
          }),
        // PENDING_FUNDING is an answer, not a failure: the retry with the same key learns the outcome.
        (r) => r.milestone.status !== 'PENDING_FUNDING',
        { caller: this.employer, rpc: 'CreateMilestone', key: `${this.o.prefix}-create-${i}` },
      );
      const id = create!.milestone.id as string;
      // The race: the employer's release and the freelancer's cancel at once, each retried
      // with its own key until it has a final answer. Exactly one may win.
      const release = (c: EscrowClient) =>
        c.m('ReleaseMilestone', this.employer, { milestone_id: id, idempotency_key: `${this.o.prefix}-release-${i}` });
      const cancel = (c: EscrowClient) =>
        c.m('CancelMilestone', this.freelancer, { milestone_id: id, reason: 'fault', idempotency_key: `${this.o.prefix}-cancel-${i}` });
      const releaseRecord = { caller: this.employer, rpc: 'ReleaseMilestone', key: `${this.o.prefix}-release-${i}`, milestoneId: id };
      const cancelRecord = { caller: this.freelancer, rpc: 'CancelMilestone', key: `${this.o.prefix}-cancel-${i}`, milestoneId: id };
      const [r, c] = await Promise.all([this.contend(lane + i, release, releaseRecord), this.contend(lane + i + 1, cancel, cancelRecord)]);
      if ((r === null) === (c === null)) {
        const m = await this.call(lane, (cl) => cl.m('GetMilestone', this.employer, { milestone_id: id })).catch(() => null);
        const history = m?.milestone.history.map((h: { type: string; version: number }) => `${h.version}:${h.type}`).join(' ');
        throw new Error(
          `milestone ${id}: ${r && c ? 'both' : 'neither'} release and cancel won (${r?.milestone.status}/${c?.milestone.status}; history ${history})`,
        );
      }
      const kind = r ? 'release' : 'cancel';
      // A second answer to the winning key, as a client that lost the first would get it.
      const again = await this.call(
        lane + i + 1,
        kind === 'release' ? release : cancel,
        undefined,
        kind === 'release' ? releaseRecord : cancelRecord,
      );
      this.settled.push({ id, kind, answers: [(r ?? c)!.milestone.status, again!.milestone.status] });
      this.moneyMoved = this.moneyMoved.plus(this.o.amount);
    }
  }

  /** Starts measuring the unavailability window afresh (after the load is seeded and running). */
  markWindow(): void {
    this.longestGapMs = 0;
  }

  summary() {
    return {
      longestGapMs: this.longestGapMs,
      commandsSent: this.sent,
      succeeded: this.succeeded,
      failedByCode: this.failed,
      milestonesSettled: this.settled.length,
      moneyMoved: this.moneyMoved.toFixed(2),
    };
  }
}
