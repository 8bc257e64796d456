import * as grpc from '@grpc/grpc-js';
import { mintToken } from './dev/tokens.js';
import { loadEscrowPackage } from './gateway/proto.js';
import { errorInfoOf } from './gateway/status.js';

const pkg = loadEscrowPackage();

export interface RpcError {
  code: grpc.status;
  reason: string | null;
  details: string;
  /** ErrorInfo metadata: `field` of an input error, `retry_after_ms` of a limit. */
  info?: Record<string, string>;
}

export type Service = 'MilestoneService' | 'AccountService' | 'ReviewService';
export type User = string | { id: string; roles: string[] };

/**
 * A gRPC client of the engine as another service uses it: a real connection and bearer
 * tokens minted with the deployment's secret. Shared by the tests, the race harness and
 * the benchmark, and the CLI (src/cli.ts).
 */
export class EscrowClient {
  private readonly clients: Record<Service, grpc.Client>;
  private readonly tokens = new Map<string, Promise<string>>();

  constructor(
    readonly address: string,
    private readonly secret: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    const make = (s: Service) => new pkg[s](address, credentials);
    this.clients = {
      MilestoneService: make('MilestoneService'),
      AccountService: make('AccountService'),
      ReviewService: make('ReviewService'),
    };
  }

  token(user: string, roles: string[] = []): Promise<string> {
    const k = `${user}|${roles.join(',')}`;
    let t = this.tokens.get(k);
    if (!t) this.tokens.set(k, (t = mintToken(this.secret, user, { roles })));
    return t;
  }

  /** Calls with a raw token (or none): for authentication tests. Rejects with an RpcError. */
  callWithToken<T = any>(service: Service, method: string, request: object, token: string | null, deadlineMs = 20_000): Promise<T> {
    const md = new grpc.Metadata();
    if (token !== null) md.set('authorization', `Bearer ${token}`);
    const client = this.clients[service] as unknown as Record<string, Function>;
    return new Promise<T>((resolve, reject) => {
      client[method]!.call(
        this.clients[service],
        request,
        md,
        { deadline: Date.now() + deadlineMs },
        (err: grpc.ServiceError | null, res: T) => {
          if (err) {
            const info = errorInfoOf(err);
            reject(
              Object.assign(new Error(err.details), {
                code: err.code,
                reason: info?.reason ?? null,
                details: err.details,
                info: info?.metadata ?? {},
              }),
            );
          } else resolve(res);
        },
      );
    });
  }

  async call<T = any>(service: Service, method: string, user: User, request: object): Promise<T> {
    const u = typeof user === 'string' ? { id: user, roles: [] } : user;
    return this.callWithToken<T>(service, method, request, await this.token(u.id, u.roles));
  }

  m<T = any>(method: string, user: User, request: object) {
    return this.call<T>('MilestoneService', method, user, request);
  }

  a<T = any>(method: string, user: User, request: object) {
    return this.call<T>('AccountService', method, user, request);
  }

  r<T = any>(method: string, user: User, request: object) {
    return this.call<T>('ReviewService', method, user, request);
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

export function statusName(err: unknown): string {
  const code = (err as { code?: number }).code;
  return typeof code === 'number' ? (grpc.status[code] ?? `CODE_${code}`) : 'CLIENT_ERROR';
}
