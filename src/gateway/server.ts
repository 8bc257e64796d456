import * as grpc from '@grpc/grpc-js';
import { createServer, type Server as NetServer } from 'node:net';
import { CallerLimits, type CallerLimitsOptions } from './limits.js';
import { PageTokens } from './page-token.js';
import type { AccountApp } from '../app/accounts.js';
import type { MilestoneApp } from '../app/milestones.js';
import type { Logger } from '../log.js';
import { accountService } from './account.service.js';
import { Authenticator, type AuthOptions } from './auth.js';
import type { HandlerDeps } from './handlers.js';
import { reviewService } from './review.service.js';
import type { ReviewApp } from '../app/reviews.js';
import { openQuarantined, type ReadPool } from '../app/views.js';
import { milestoneService } from './milestone.service.js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import * as protoLoader from '@grpc/proto-loader';
import { loadEscrowDefinition, loadEscrowPackage } from './proto.js';

const SERVICES = ['escrow.v1.MilestoneService', 'escrow.v1.AccountService', 'escrow.v1.ReviewService'];
/**
 * Health (grpc.health.v1), checked every second: the server ('') and each service are
 * NOT_SERVING while NATS or PostgreSQL cannot be reached (a load balancer then sends calls
 * elsewhere). The entry for the ledger is also NOT_SERVING while its quarantine holds open
 * entries (a message it moved aside waits for a person) or this process's worker stopped;
 * commands are still taken then.
 */
export const LEDGER_HEALTH = 'escrow.v1.Ledger';
const HEALTH_CHECK_MS = 1_000;

export interface GatewayOptions {
  address: string;
  /** How tokens are verified (src/gateway/auth.ts). */
  auth: AuthOptions;
  /** The key page tokens are bound with (ESCROW_EVENT_KEY, else AUTH_JWT_SECRET). */
  pageSecret: string;
  /** TLS on the port (PEM contents); with a client CA, clients must show a certificate (mTLS). */
  tls: { cert: Buffer; key: Buffer; clientCa: Buffer | null } | null;
  maxMessageBytes: number;
  limits: CallerLimitsOptions;
  /** Whether this process's ledger worker stopped (on a broken invariant); absent without one. */
  ledgerStopped?: () => boolean;
  connections: { max: number; idleMs: number; maxAgeMs: number; keepaliveMs: number };
  milestones: MilestoneApp;
  accounts: AccountApp;
  reviews: ReviewApp;
  pool: ReadPool;
  logger: Logger;
}

/** The gRPC server of package escrow.v1. */
export class Gateway {
  private readonly server: grpc.Server;
  private readonly health: HealthImplementation;
  private listener: NetServer | null = null;
  private readonly auth: Authenticator;
  private readonly calls = { active: 0 };
  private healthCheck: NodeJS.Timeout | null = null;
  port = 0;

  constructor(private readonly o: GatewayOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': o.maxMessageBytes,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
      // A connection without calls is closed (a raw socket that never speaks HTTP/2 too: its
      // session starts with the connection), and every connection ends at its maximum age.
      'grpc.max_connection_idle_ms': o.connections.idleMs,
      'grpc.max_connection_age_ms': o.connections.maxAgeMs,
      'grpc.max_connection_age_grace_ms': 30_000,
      'grpc.keepalive_time_ms': o.connections.keepaliveMs,
      'grpc.keepalive_timeout_ms': 20_000,
    });
    this.auth = new Authenticator(o.auth);
    const deps: HandlerDeps = {
      auth: this.auth,
      logger: o.logger,
      limits: new CallerLimits(o.limits),
      pages: new PageTokens(o.pageSecret),
      calls: this.calls,
    };
    const pkg = loadEscrowPackage();
    this.server.addService(pkg.MilestoneService.service, milestoneService(deps, o.milestones, o.pool));
    this.server.addService(pkg.AccountService.service, accountService(deps, o.accounts));
    this.server.addService(pkg.ReviewService.service, reviewService(deps, o.reviews));
    // Standard grpc.health.v1 (for load balancers) and server reflection (grpcurl without -proto).
    this.health = new HealthImplementation({
      ...Object.fromEntries(['', ...SERVICES].map((s) => [s, 'SERVING'])),
      [LEDGER_HEALTH]: 'SERVING',
    });
    this.health.addToServer(this.server);
    // Reflection lists the health service too, so grpcurl and load balancers' tools find it.
    new ReflectionService({ ...loadEscrowDefinition(), ...protoLoader.loadSync(healthProtoPath) }).addToServer(this.server);
  }

  /**
   * Listens on the address with a socket server of its own that hands each connection to
   * grpc-js (its connection injector), so the number of open connections is bounded: beyond
   * ESCROW_GRPC_CONNECTIONS_MAX a new connection is closed at once, and the file descriptors
   * the process has stay for the clients it serves.
   */
  async start(): Promise<number> {
    const tls = this.o.tls;
    const credentials = tls
      ? grpc.ServerCredentials.createSsl(tls.clientCa, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== null)
      : grpc.ServerCredentials.createInsecure();
    const injector = this.server.createConnectionInjector(credentials);
    const listener = createServer((socket) => injector.injectConnection(socket));
    listener.maxConnections = this.o.connections.max;
    const cut = this.o.address.lastIndexOf(':');
    const host = this.o.address.slice(0, cut).replace(/^\[(.*)\]$/, '$1');
    const port = Number(this.o.address.slice(cut + 1));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: host || undefined, port }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listener = listener;
    const check = async () => {
      const open = await Promise.race([
        openQuarantined(this.o.pool).then(
          (n) => n,
          () => null,
        ),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), HEALTH_CHECK_MS).unref()),
      ]);
      if (!this.healthCheck) return;
      const serving = this.o.milestones.log.available && open !== null;
      for (const s of ['', ...SERVICES]) this.health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
      this.health.setStatus(LEDGER_HEALTH, serving && open === 0 && !this.o.ledgerStopped?.() ? 'SERVING' : 'NOT_SERVING');
    };
    this.healthCheck = setInterval(() => void check(), HEALTH_CHECK_MS);
    this.healthCheck.unref();
    void check();
    const address = listener.address();
    this.port = typeof address === 'object' && address ? address.port : port;
    return this.port;
  }

  /**
   * Stops accepting calls and lets the running ones finish, up to `graceMs`; then cancels them.
   * It waits for the unary calls it counts, then up to a second for the connections to close
   * (their answers flushed), not only for grpc-js's tryShutdown: on Node 24 that calls back at
   * once, with calls still running. Watch streams still open are then ended.
   */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.healthCheck) clearInterval(this.healthCheck);
    this.healthCheck = null;
    for (const s of ['', ...SERVICES, LEDGER_HEALTH]) this.health.setStatus(s, 'NOT_SERVING');
    const listener = this.listener;
    listener?.close();
    this.auth.close();
    const until = Date.now() + graceMs;
    const connections = () =>
      new Promise<number>((resolve) => (listener ? listener.getConnections((err, n) => resolve(err ? 0 : n)) : resolve(0)));
    const shutdown = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await Promise.race([shutdown, new Promise((resolve) => setTimeout(resolve, graceMs))]);
    const tick = () => new Promise((resolve) => setTimeout(resolve, 10));
    while (Date.now() < until && this.calls.active > 0) await tick();
    // The answers are written; the connections close once their bytes are out (a watch stream keeps one open: ended below).
    const flushUntil = Math.min(until, Date.now() + 1_000);
    while (Date.now() < flushUntil && (await connections()) > 0) await tick();
    if (this.calls.active > 0 || (await connections()) > 0) this.server.forceShutdown();
  }
}
