import type * as grpc from '@grpc/grpc-js';
import type { AccountApp, OperationResult } from '../app/accounts.js';
import { balanceMessage, entryMessage } from './convert.js';
import { unary, type HandlerDeps } from './handlers.js';
import { isSeq } from './page-token.js';
import * as v from './validate.js';

/** A request as @grpc/proto-loader decodes it: every field is checked before use (./validate.ts). */
type Req = Record<string, unknown>;

function operationReply(r: OperationResult) {
  return { operation_id: r.operationId, status: r.status, balance: r.balance ? balanceMessage(r.balance) : null };
}

export function accountService(deps: HandlerDeps, app: AccountApp): grpc.UntypedServiceImplementation {
  return {
    Deposit: unary(deps, 'Deposit', async (r: Req, ctx) => {
      const userId = v.requirePartyId(r.user_id, 'user_id');
      const money = v.requireMoney(r.amount, 'amount');
      return operationReply(await app.deposit(ctx, userId, money, v.requireReference(r.external_reference)));
    }),
    Withdraw: unary(deps, 'Withdraw', async (r: Req, ctx) => {
      const money = v.requireMoney(r.amount, 'amount');
      return operationReply(await app.withdraw(ctx, money, v.requireReference(r.external_reference)));
    }),
    GetBalance: unary(deps, 'GetBalance', async (r: Req, ctx) => {
      const userId = v.requireId(r.user_id, 'user_id');
      return balanceMessage(await app.getBalance(ctx, userId, v.currencyCode(r.currency_code)));
    }),
    ListLedgerEntries: unary(deps, 'ListLedgerEntries', async (r: Req, ctx) => {
      const userId = v.requireId(r.user_id, 'user_id');
      const scope = `entries\u0000${ctx.caller.id}\u0000${userId}`;
      // A token names the last entry's sequence and account kind (a clear has two entries at one sequence); older ones the sequence alone.
      const token = deps.pages.open(
        scope,
        r.page_token,
        (p) => isSeq(p.s) && (p.k === undefined || p.k === 'available' || p.k === 'pending'),
      );
      const before = token?.s ? { seq: token.s, kind: typeof token.k === 'string' ? token.k : null } : null;
      const page = await app.listEntries(ctx, userId, v.pageSize(r.page_size), before);
      return {
        entries: page.rows.map(entryMessage),
        next_page_token: page.last ? deps.pages.issue(scope, { s: page.last.seq, k: page.last.kind }) : '',
      };
    }),
  };
}
