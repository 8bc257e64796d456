import * as grpc from '@grpc/grpc-js';
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

export interface GatewayOptions {
  address: string;
  secret: string;
  maxMessageBytes: number;
  inflightMax: number;
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
  port = 0;

  constructor(private readonly o: GatewayOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': o.maxMessageBytes,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
    });
    const deps: HandlerDeps = { auth: new Authenticator(o.secret), logger: o.logger, inflight: { count: 0, max: o.inflightMax }, pages: new PageTokens(o.secret) };
    const pkg = loadEscrowPackage();
    this.server.addService(pkg.MilestoneService.service, milestoneService(deps, o.milestones, o.pool));
    this.server.addService(pkg.AccountService.service, accountService(deps, o.accounts));
    this.server.addService(pkg.ReviewService.service, reviewService(deps, o.reviews));
    // Standard grpc.health.v1 (for load balancers) and server reflection (grpcurl without -proto).
    this.health = new HealthImplementation(Object.fromEntries(['', ...SERVICES].map((s) => [s, 'SERVING'])));
    this.health.addToServer(this.server);
    new ReflectionService(loadEscrowDefinition()).addToServer(this.server);
  }

  async start(): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.o.address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    return this.port;
  }

  /** Stops accepting calls and lets the running ones finish, up to `graceMs`; then cancels them. */
  async stop(graceMs = 5_000): Promise<void> {
    for (const s of ['', ...SERVICES]) this.health.setStatus(s, 'NOT_SERVING');
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
