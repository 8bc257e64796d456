import { mayDeposit, mayReadBalance } from '../../actors/account.rules.js';
import { FailedPrecondition, InvalidArgument, PermissionDenied } from '../errors.js';
import type { EventLog } from '../events/log.js';
import { accountEventId, digest } from '../ids.js';
import type { AccountRequestData } from '../ledger/intents.js';
import type { AccountEventData, Funds } from './funds.js';
import type { Pool } from '../ledger/db.js';
import * as read from '../ledger/read.js';
import { add, cmp, format, sub, zero, type Money } from '../../actors/money.js';
import type { Outcomes } from '../runtime/outcomes.js';
import type { CallContext } from './milestones.js';

export interface Balance {
  userId: string;
  currency: string;
  available: string;
  held: string;
  incoming: string;
  /** Paid to the user and not cleared yet (a clearing period): not spendable; `nextClearingAt` says when the first clears. */
  pending: string;
  nextClearingAt: Date | null;
}

export interface OperationResult {
  operationId: string;
  status: 'APPLIED' | 'PENDING';
  balance: Balance | null;
}

export interface AccountAppOptions {
  log: EventLog;
  pool: Pool;
  outcomes: Outcomes;
  funds: Funds;
  ledgerWaitMs: number;
  now: () => Date;
}

/**
 * Deposits and withdrawals go through the event log like every money movement, and the
 * ledger worker posts them; the call waits for the posting's outcome.
 */
export class AccountApp {
  constructor(private readonly o: AccountAppOptions) {}

  async deposit(ctx: CallContext, userId: string, money: Money, reference: string): Promise<OperationResult> {
    if (!mayDeposit(ctx.caller)) throw new PermissionDenied('PAYMENTS_ROLE_REQUIRED', 'only the payments service may deposit');
    return this.request(ctx, 'deposit', userId, money, reference);
  }

  async withdraw(ctx: CallContext, money: Money, reference: string): Promise<OperationResult> {
    return this.request(ctx, 'withdrawal', ctx.caller.id, money, reference);
  }

  private async request(
    ctx: CallContext,
    kind: 'deposit' | 'withdrawal',
    userId: string,
    money: Money,
    reference: string,
  ): Promise<OperationResult> {
    const data: AccountRequestData = { userId, currency: money.currency, amount: money.amount, externalReference: reference };
    // Same reference and content: same event id, so the log and the ledger see one operation.
    // Same reference, other content: another id, which the ledger refuses as a reference conflict.
    const id = accountEventId(kind, `${reference}\u0000${digest(data)}`);
    // The user's account actor decides a withdrawal on its conservative view (a refusal appends
    // nothing, so a later try may succeed); the ledger posts it, or refuses a reused reference.
    const append = async () => {
      const decision = await this.o.funds.decide(userId, {
        type: kind === 'deposit' ? 'deposit_requested' : 'withdrawal_requested',
        id,
        by: ctx.caller.id,
        currency: money.currency,
        amount: money.amount,
        debit: kind === 'withdrawal',
        // A payments service may retry a withdrawal with its reference long after: the first decision stands (an
        // applied one is never answered INSUFFICIENT_FUNDS because the rest was spent since).
        lookUpFirst: kind === 'withdrawal',
        change: { currency: money.currency, amount: money.amount, externalReference: reference },
        time: this.o.now().toISOString(),
      });
      if (decision === 'insufficient')
        throw new FailedPrecondition('INSUFFICIENT_FUNDS', `available ${money.currency} balance is below ${money.amount}`);
      return { duplicate: decision === 'duplicate' };
    };
    const outcome = await this.o.outcomes.waitFor(id, Math.max(0, Math.min(this.o.ledgerWaitMs, ctx.deadline - Date.now() - 50)), append);
    if (!outcome) return { operationId: id, status: 'PENDING', balance: null };
    if (outcome.result === 'reference_conflict') {
      throw new InvalidArgument('EXTERNAL_REFERENCE_REUSED', 'this external_reference was used for a different operation');
    }
    if (outcome.result === 'insufficient_funds') {
      throw new FailedPrecondition('INSUFFICIENT_FUNDS', `available ${money.currency} balance is below ${money.amount}`);
    }
    // Applied is the answer; the balance is a courtesy, left out if the read model is unreachable.
    const balance = await this.balanceOf(userId, money.currency).catch(() => null);
    return { operationId: id, status: 'APPLIED', balance };
  }

  async getBalance(ctx: CallContext, userId: string, currency: string): Promise<Balance> {
    if (!mayReadBalance(ctx.caller, userId)) throw new PermissionDenied('NOT_OWNER', "caller may not read this user's balance");
    return this.balanceOf(userId, currency);
  }

  /**
   * The balance as the ledger posted it, with the debits the user's account actors decided
   * that the ledger has not reached yet moved from available to held: a milestone just created
   * shows at once, and available is what the account actor would let the user spend now.
   */
  private async balanceOf(userId: string, currency: string): Promise<Balance> {
    // The ledger first, then the log: debits decided after the read only make the figure more careful.
    const { balance: row, decidedPosted } = await read.balanceAndView(this.o.pool, userId, currency);
    const last = await this.o.log.readLastTrusted<Partial<AccountEventData>>(this.o.log.names.account(userId)).catch(() => null);
    const debited = last?.last?.event.data.state?.debited[currency];
    const inFlight = debited ? sub(currency, debited, decidedPosted) : '0';
    const undecided = cmp(inFlight, '0') > 0 ? inFlight : '0';
    const z = zero(currency);
    const uncleared = row && cmp(row.pending, '0') > 0;
    return {
      userId,
      currency,
      available: row ? fixed(sub(currency, row.available, undecided), currency) : fixed(sub(currency, '0', undecided), currency),
      held: row ? fixed(add(currency, row.held, undecided), currency) : fixed(undecided, currency),
      incoming: row ? fixed(row.incoming, currency) : z,
      pending: row ? fixed(row.pending, currency) : z,
      nextClearingAt: uncleared ? await read.nextClearing(this.o.pool, userId, currency) : null,
    };
  }

  /** A page of the user's ledger entries, newest first, after the previous page's last entry if given; `last` is where the next page starts. */
  async listEntries(ctx: CallContext, userId: string, pageSize: number, before: { seq: string; kind: string | null } | null) {
    if (!mayReadBalance(ctx.caller, userId)) throw new PermissionDenied('NOT_OWNER', "caller may not read this user's ledger");
    const rows = await read.entriesOf(this.o.pool, userId, before, pageSize);
    const last = rows.at(-1);
    return { rows, last: rows.length === pageSize && last ? { seq: last.stream_seq, kind: last.account_kind } : null };
  }
}

function fixed(value: string, currency: string): string {
  return format(currency, value);
}
