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

/**
 * A reply of @grpc/proto-loader's dynamic client: its shape is the proto's, unknown to the
 * compiler. Callers that read it name the type they expect; tests take it as it comes.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the one untyped value: a dynamic client's reply
export type Reply = any;

type Unary = (this: grpc.Client, request: object, md: grpc.Metadata, options: grpc.CallOptions, cb: grpc.requestCallback<unknown>) => void;
type ServerStream = (this: grpc.Client, request: object, md: grpc.Metadata) => grpc.ClientReadableStream<Reply>;
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
  callWithToken<T = Reply>(service: Service, method: string, request: object, token: string | null, deadlineMs = 20_000): Promise<T> {
    const md = new grpc.Metadata();
    if (token !== null) md.set('authorization', `Bearer ${token}`);
    const unary = (this.clients[service] as unknown as Record<string, Unary | undefined>)[method];
    if (!unary) return Promise.reject(new Error(`${service} has no method ${method}`));
    return new Promise<T>((resolve, reject) => {
      unary.call(
        this.clients[service],
        request,
        md,
        { deadline: Date.now() + deadlineMs },
        (err: grpc.ServiceError | null, res?: unknown) => {
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
          } else resolve(res as T);
        },
      );
    });
  }

  async call<T = Reply>(service: Service, method: string, user: User, request: object): Promise<T> {
    const u = typeof user === 'string' ? { id: user, roles: [] } : user;
    return this.callWithToken<T>(service, method, request, await this.token(u.id, u.roles));
  }

  m<T = Reply>(method: string, user: User, request: object) {
    return this.call<T>('MilestoneService', method, user, request);
  }

  a<T = Reply>(method: string, user: User, request: object) {
    return this.call<T>('AccountService', method, user, request);
  }

  r<T = Reply>(method: string, user: User, request: object) {
    return this.call<T>('ReviewService', method, user, request);
  }

  stream(method: string, token: string, request: object): grpc.ClientReadableStream<Reply> {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const open = (this.clients.MilestoneService as unknown as Record<string, ServerStream | undefined>)[method];
    if (!open) throw new Error(`MilestoneService has no method ${method}`);
    return open.call(this.clients.MilestoneService, request, md);
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

export function statusName(err: unknown): string {
  const code = (err as { code?: number }).code;
  return typeof code === 'number' ? (grpc.status[code] ?? `CODE_${code}`) : 'CLIENT_ERROR';
}
