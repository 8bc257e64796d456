import * as grpc from '@grpc/grpc-js';
import { createServer, type Server as NetServer } from 'node:net';
import { CallerLimits, type CallerLimitsOptions } from './limits.js';
import { PageTokens } from './page-token.js';
import type { AccountApp } from '../app/accounts.js';
import type { MilestoneApp } from '../app/milestones.js';
import type { Pool } from '../ledger/db.js';
import type { Logger } from '../log.js';
import { accountService } from './account.service.js';
import { Authenticator } from './auth.js';
import type { HandlerDeps } from './handlers.js';
import { reviewService } from './review.service.js';
import type { ReviewApp } from '../app/reviews.js';
import { milestoneService } from './milestone.service.js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { loadEscrowDefinition, loadEscrowPackage } from './proto.js';

const SERVICES = ['escrow.v1.MilestoneService', 'escrow.v1.AccountService', 'escrow.v1.ReviewService'];
/**
 * A health entry for the ledger: NOT_SERVING while its quarantine holds open entries (a
 * message it moved aside waits for a person), SERVING otherwise. The server ('') and the
 * services stay SERVING: commands are still taken and applied.
 */
export const LEDGER_HEALTH = 'escrow.v1.Ledger';
const QUARANTINE_CHECK_MS = 1_000;

export interface GatewayOptions {
  address: string;
  secret: string;
  maxMessageBytes: number;
  limits: CallerLimitsOptions;
  connections: { max: number; idleMs: number; maxAgeMs: number; keepaliveMs: number };
  milestones: MilestoneApp;
  accounts: AccountApp;
  reviews: ReviewApp;
  pool: Pool;
  logger: Logger;
}

/** The gRPC server of package escrow.v1. */
export class Gateway {
  private readonly server: grpc.Server;
  private readonly health: HealthImplementation;
  private listener: NetServer | null = null;
  private quarantineCheck: NodeJS.Timeout | null = null;
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
    const deps: HandlerDeps = { auth: new Authenticator(o.secret), logger: o.logger, limits: new CallerLimits(o.limits), pages: new PageTokens(o.secret) };
    const pkg = loadEscrowPackage();
    this.server.addService(pkg.MilestoneService.service, milestoneService(deps, o.milestones, o.pool));
    this.server.addService(pkg.AccountService.service, accountService(deps, o.accounts));
    this.server.addService(pkg.ReviewService.service, reviewService(deps, o.reviews));
    // Standard grpc.health.v1 (for load balancers) and server reflection (grpcurl without -proto).
    this.health = new HealthImplementation({ ...Object.fromEntries(['', ...SERVICES].map((s) => [s, 'SERVING'])), [LEDGER_HEALTH]: 'SERVING' });
    this.health.addToServer(this.server);
    new ReflectionService(loadEscrowDefinition()).addToServer(this.server);
  }

  /**
   * Listens on the address with a socket server of its own that hands each connection to
   * grpc-js (its connection injector), so the number of open connections is bounded: beyond
   * ESCROW_GRPC_CONNECTIONS_MAX a new connection is closed at once, and the file descriptors
   * the process has stay for the clients it serves.
   */
  async start(): Promise<number> {
    const injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
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
      const open = await this.o.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM ledger_quarantine WHERE resolution IS NULL').catch(() => null);
      if (open) this.health.setStatus(LEDGER_HEALTH, open.rows[0]?.n === '0' ? 'SERVING' : 'NOT_SERVING');
    };
    void check();
    this.quarantineCheck = setInterval(() => void check(), QUARANTINE_CHECK_MS);
    this.quarantineCheck.unref();
    const address = listener.address();
    this.port = typeof address === 'object' && address ? address.port : port;
    return this.port;
  }

  /** Stops accepting calls and lets the running ones finish, up to `graceMs`; then cancels them. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.quarantineCheck) clearInterval(this.quarantineCheck);
    for (const s of ['', ...SERVICES, LEDGER_HEALTH]) this.health.setStatus(s, 'NOT_SERVING');
    this.listener?.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
