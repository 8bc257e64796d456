import { EscrowClient as BaseClient, type RpcError } from '../../src/client.js';

export type { RpcError };

export const TEST_SECRET = 'test-secret-0123456789abcdef';

/** The engine's client (src/client.ts), with the test run's secret. */
export class EscrowClient extends BaseClient {
  constructor(address: string) {
    super(address, TEST_SECRET);
  }
}

/** Resolves to the RpcError of a call that must fail, or throws if it succeeded. */
export async function failure(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    const e = err as RpcError;
    return { code: e.code, reason: e.reason, details: e.details, info: e.info ?? {} };
  }
  throw new Error('expected the call to fail, and it succeeded');
}

export const PAYMENTS = { id: 'payments-svc', roles: ['payments'] };

export const usd = (amount: string) => ({ currency_code: 'USD', amount });
