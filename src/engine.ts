import { connect, type NatsConnection } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { AccountApp } from './app/accounts.js';
import { MilestoneApp } from './app/milestones.js';
import { ReviewApp } from './app/reviews.js';
import { natsOptions, type Config } from './config.js';
import { EventLog, RECOMMENDED_CLUSTER_SERVER, versionAtLeast } from './events/log.js';
import { names } from './events/names.js';
import { Gateway } from './gateway/server.js';
import { createPool, migrate, signedSince, type Pool } from './ledger/db.js';
import { LedgerWorker } from './ledger/worker.js';
import { ignoreFailure, setProcessLogger, type Logger } from './log.js';

/** A dependency could not be reached at start-up: which one, where, and why (main exits 69). */
export class DependencyUnreachable extends Error {
  constructor(
    readonly dependency: 'NATS' | 'PostgreSQL',
    readonly address: string,
    cause: unknown,
  ) {
    super(`cannot reach ${dependency} at ${address}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'DependencyUnreachable';
  }
}

/** A connection URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

export interface EngineOptions {
  config: Config & { databaseUrl: string; natsUrl: string };
  gateway: boolean;
  worker: boolean;
  logger: Logger;
  /** Injected clock; default the system clock. */
  now?: () => Date;
  /** Called when the worker meets a broken invariant. Default: exit the process with code 70. */
  onFatal?: (err: Error) => void;
}

/**
 * The composition root: connects NATS and Postgres, applies migrations, and starts the
 * gateway and/or the ledger worker. Several engines may run against one NATS and Postgres.
 */
export class Engine {
  private constructor(
    readonly nc: NatsConnection,
    readonly log: EventLog,
    readonly pool: Pool,
    readonly gateway: Gateway | null,
    readonly worker: LedgerWorker | null,
    readonly milestones: MilestoneApp | null,
    readonly reviews: ReviewApp | null,
    private readonly drainMs: number,
  ) {}

  static async start(o: EngineOptions): Promise<Engine> {
    const { config, logger } = o;
    setProcessLogger(logger);
    const now = o.now ?? (() => new Date());
    // noAsyncTraces: no stack captured for every request (an Error made per append and per direct get was 6% of a gateway's CPU).
    // Signs events and binds page tokens: ESCROW_EVENT_KEY, else the HS256 secret (src/config.ts requires one of them).
    const internalSecret = config.eventKey ?? config.authJwtSecret;
    if (!internalSecret) throw new Error('the engine needs ESCROW_EVENT_KEY or AUTH_JWT_SECRET');
    const nc = await connect({
      ...natsOptions(config.natsUrl, config.natsAuth),
      name: `escrow-${config.namespace}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      noAsyncTraces: true,
    }).catch((err: unknown) => {
      throw new DependencyUnreachable('NATS', config.natsUrl, err);
    });
    const log = await EventLog.open(nc, names(config.namespace), {
      duplicateWindowMs: config.duplicateWindowMs,
      signingSecret: internalSecret,
      replicas: config.streamReplicas,
      retryMs: config.logRetryMs,
      maxBytes: config.streamMaxBytes,
      maxMessageBytes: config.streamMaxMessageBytes,
      onFull: (used, max) =>
        logger[used >= max ? 'error' : 'warn'](
          { usedBytes: used, maxBytes: max },
          used >= max ? 'the event stream is full: new commands are refused' : 'the event stream is filling up',
        ),
      allowUnsafeReplicas: config.unsafeReplicatedStream,
    });
    const older = [...log.peerVersions].filter(([, v]) => !versionAtLeast(v, RECOMMENDED_CLUSTER_SERVER));
    if (older.length > 0) {
      logger.warn(
        { servers: Object.fromEntries(older), recommended: RECOMMENDED_CLUSTER_SERVER },
        'nats-server before 2.10.25 has replicated-stream bugs under partitions and leader changes (nats-server#5644, #6415; see the scale-out section of docs/operations.md): upgrade',
      );
    }
    const pool = createPool(config.databaseUrl, config.namespace);
    await migrate(pool, config.namespace).catch(async (err: unknown) => {
      await pool.end().catch(ignoreFailure('closing the pool after a failed start'));
      await nc.close().catch(ignoreFailure('closing NATS after a failed start'));
      // Only a failure to reach the database is the dependency's; a failing migration is ours.
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && /^(ECONN|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|57P03|28)/.test(code))
        throw new DependencyUnreachable('PostgreSQL', redact(config.databaseUrl), err);
      if (err instanceof Error && /timeout|terminated/i.test(err.message))
        throw new DependencyUnreachable('PostgreSQL', redact(config.databaseUrl), err);
      throw err;
    });
    const stream = await log.retrying(() => log.jsm.streams.info(log.names.stream), Date.now() + 30_000);
    log.trustUnsignedBefore(await signedSince(pool, { created: stream.created, nextSeq: stream.state.last_seq + 1 }));

    let worker: LedgerWorker | null = null;
    if (o.worker) {
      worker = new LedgerWorker({
        log,
        pool,
        logger: logger.child({ role: 'worker' }),
        batchMax: config.ledgerBatchMax,
        standbyPollMs: config.ledgerStandbyPollMs,
        onFatal: o.onFatal ?? (() => process.exit(70)),
        publishDelayMs: config.faultPublishDelayMs,
      });
      await worker.start();
    }
    let gateway: Gateway | null = null;
    let reviews: ReviewApp | null = null;
    let milestones: MilestoneApp | null = null;
    // Every process runs the milestone use cases' background work (saga sweep, timers); the
    // gateway serves them over gRPC.
    if (o.gateway || o.worker) {
      milestones = new MilestoneApp({
        log,
        mailboxMax: config.mailboxMax,
        actorsMax: config.actorsMax,
        actorIdleMs: config.actorIdleMs,
        fundingWaitMs: config.fundingWaitMs,
        now,
        pool,
        terms: config.terms,
        timerScanMs: config.timerScanMs,
        reservationTtlMs: config.reservationTtlMs,
        projectAwards: config.projectAwards,
        faultFeeDecisionDelayMs: config.faultFeeDecisionDelayMs,
        faultKillAfterReservation: config.faultKillAfterReservation,
      });
      milestones.start();
    }
    if (o.gateway && milestones) {
      const accounts = new AccountApp({
        log,
        pool,
        outcomes: milestones.outcomes,
        funds: milestones.funds,
        ledgerWaitMs: config.ledgerWaitMs,
        now,
      });
      reviews = new ReviewApp({
        log,
        pool,
        mailboxMax: config.mailboxMax,
        actorsMax: config.actorsMax,
        actorIdleMs: config.actorIdleMs,
        now,
        reputationMinPaid: config.reputationMinPaid,
      });
      gateway = new Gateway({
        address: config.grpcAddress,
        auth: {
          secret: config.authJwtSecret,
          jwksFile: config.auth.jwksFile,
          jwksUrl: config.auth.jwksUrl,
          issuer: config.auth.issuer,
          audience: config.auth.audience,
        },
        pageSecret: internalSecret,
        tls: config.grpcTls
          ? {
              cert: readFileSync(config.grpcTls.cert),
              key: readFileSync(config.grpcTls.key),
              clientCa: config.grpcTls.clientCa ? readFileSync(config.grpcTls.clientCa) : null,
            }
          : null,
        maxMessageBytes: config.grpcMaxMessageBytes,
        limits: {
          inflightMax: config.inflightMax,
          reservedForRoles: Math.min(config.callerLimits.reservedForRoles, config.inflightMax - 1),
          perCallerInflightMax: config.callerLimits.perCallerInflightMax,
          rates: {
            write: { rate: config.callerLimits.writesPerS, burst: 2 * config.callerLimits.writesPerS },
            read: { rate: config.callerLimits.readsPerS, burst: 2 * config.callerLimits.readsPerS },
          },
          watchesPerCallerMax: config.callerLimits.watchesPerCallerMax,
          watchMaxAgeMs: config.callerLimits.watchMaxAgeMs,
        },
        connections: config.grpcConnections,
        ...(worker ? { ledgerStopped: () => worker.role === 'stopped' } : {}),
        milestones,
        accounts,
        reviews,
        pool,
        logger: logger.child({ role: 'gateway' }),
      });
      await gateway.start();
    }
    // A call taken just before a shutdown may wait for the ledger (or a funding decision) this long: the drain allows for it.
    const drainMs = Math.max(5_000, config.ledgerWaitMs + 2_000, config.fundingWaitMs + 2_000);
    return new Engine(nc, log, pool, gateway, worker, milestones, reviews, drainMs);
  }

  /** Graceful: no new calls, running calls and the current ledger batch finish, then connections close. */
  async stop(): Promise<void> {
    await this.gateway?.stop(this.drainMs);
    this.milestones?.stop();
    this.reviews?.close();
    await this.worker?.stop();
    this.log.stopWatching();
    await this.nc.drain().catch(ignoreFailure('draining NATS on stop'));
    await this.pool.end().catch(ignoreFailure('closing the pool on stop'));
  }
}
