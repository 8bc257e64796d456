import * as grpc from '@grpc/grpc-js';
import { mintToken } from '../../src/dev/tokens.js';
import { loadEscrowPackage } from '../../src/gateway/proto.js';
import { reasonOf } from '../../src/gateway/status.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef';

const pkg = loadEscrowPackage();

export interface RpcError {
  code: grpc.status;
  reason: string | null;
  details: string;
}

type Service = 'MilestoneService' | 'AccountService' | 'ReviewService';

/** A gRPC client of the engine as another service would use it: real connection, bearer tokens. */
export class EscrowClient {
  private readonly clients: Record<Service, grpc.Client>;
  private readonly tokens = new Map<string, string>();

  constructor(readonly address: string) {
    const make = (s: Service) => new pkg[s](address, grpc.credentials.createInsecure());
    this.clients = { MilestoneService: make('MilestoneService'), AccountService: make('AccountService'), ReviewService: make('ReviewService') };
  }

  async token(user: string, roles: string[] = []): Promise<string> {
    const k = `${user}|${roles.join(',')}`;
    let t = this.tokens.get(k);
    if (!t) this.tokens.set(k, (t = await mintToken(TEST_SECRET, user, { roles })));
    return t;
  }

  /** Calls with a raw token (or none): for authentication tests. */
  callWithToken<T = any>(service: Service, method: string, request: object, token: string | null, deadlineMs = 20_000): Promise<T> {
    const md = new grpc.Metadata();
    if (token !== null) md.set('authorization', `Bearer ${token}`);
    const client = this.clients[service] as unknown as Record<string, Function>;
    return new Promise<T>((resolve, reject) => {
      client[method]!.call(this.clients[service], request, md, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: T) => {
        if (err) reject(Object.assign(new Error(err.details), { code: err.code, reason: reasonOf(err), details: err.details }));
        else resolve(res);
      });
    });
  }

  async call<T = any>(service: Service, method: string, user: string | { id: string; roles: string[] }, request: object): Promise<T> {
    const u = typeof user === 'string' ? { id: user, roles: [] } : user;
    return this.callWithToken<T>(service, method, request, await this.token(u.id, u.roles));
  }

  m<T = any>(method: string, user: string | { id: string; roles: string[] }, request: object) {
    return this.call<T>('MilestoneService', method, user, request);
  }

  a<T = any>(method: string, user: string | { id: string; roles: string[] }, request: object) {
    return this.call<T>('AccountService', method, user, request);
  }

  stream(method: string, token: string, request: object): grpc.ClientReadableStream<any> {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const client = this.clients.MilestoneService as unknown as Record<string, Function>;
    return client[method]!.call(this.clients.MilestoneService, request, md);
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

/** Resolves to the RpcError of a call that must fail, or throws if it succeeded. */
export async function failure(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    const e = err as RpcError;
    return { code: e.code, reason: e.reason, details: e.details };
  }
  throw new Error('expected the call to fail, and it succeeded');
}

export const PAYMENTS = { id: 'payments-svc', roles: ['payments'] };

export const usd = (amount: string) => ({ currency_code: 'USD', amount });
