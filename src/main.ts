import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './config.js';
import { DataDirInUse, DataDirUnusable, NatsServerMissing, startEmbedded, type Embedded } from './dev/embedded.js';
import { removeEndpoints, writeEndpoints } from './dev/endpoints.js';
import { mintToken } from './dev/tokens.js';
import { DependencyUnreachable, Engine } from './engine.js';
import { serveMetrics } from './metrics.js';
import { startTracing, stopTracing } from './tracing.js';
import { createLogger } from './log.js';

/**
 * `tsx src/main.ts all|gateway|worker`. With DATABASE_URL or NATS_URL unset, runs the
 * embedded default (embedded PostgreSQL, nats-server from the PATH) and prints a
 * development secret, tokens and a grpcurl walk-through.
 */
async function main(): Promise<void> {
  const role = process.argv[2] ?? 'all';
  if (!['all', 'gateway', 'worker'].includes(role)) {
    console.error(`usage: main.ts all|gateway|worker (got "${role}")`);
    process.exit(64);
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(78);
    }
    throw err;
  }
  process.setSourceMapsEnabled(config.sourceMaps);
  const logger = createLogger(config.logLevel);
  const embeddedMode = !config.databaseUrl || !config.natsUrl;
  let embedded: Embedded | null = null;
  if (embeddedMode) {
    try {
      embedded = await startEmbedded({ databaseUrl: config.databaseUrl, natsUrl: config.natsUrl, dataDir: config.dataDir, logger });
    } catch (err) {
      if (err instanceof NatsServerMissing) {
        console.error(err.message);
        process.exit(69);
      }
      if (err instanceof DataDirInUse) {
        console.error(err.message);
        process.exit(75);
      }
      if (err instanceof DataDirUnusable) {
        console.error(err.message);
        process.exit(73);
      }
      throw err;
    }
  }
  const jwks = config.auth.jwksFile !== undefined || config.auth.jwksUrl !== undefined;
  if (!config.authJwtSecret && !jwks && !embeddedMode) {
    console.error(
      'configuration AUTH_JWT_SECRET: required when DATABASE_URL and NATS_URL are set (or AUTH_JWKS_FILE / AUTH_JWKS_URL, with AUTH_ISSUER, AUTH_AUDIENCE and ESCROW_EVENT_KEY)',
    );
    process.exit(78);
  }
  // The embedded default makes a development secret (printed in the walk-through); a deployment never does.
  const secret = config.authJwtSecret ?? (embeddedMode ? developmentSecret(config.dataDir) : undefined);
  // OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set (src/tracing.ts).
  if (await startTracing(role))
    logger.info({ endpoint: process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'tracing to OTLP');
  // Both are set: given, or the embedded default's.
  const databaseUrl = embedded?.databaseUrl ?? config.databaseUrl ?? '';
  const natsUrl = embedded?.natsUrl ?? config.natsUrl ?? '';
  const engine = await Engine.start({
    config: {
      ...config,
      databaseUrl,
      natsUrl,
      authJwtSecret: secret,
    },
    gateway: role !== 'worker',
    worker: role !== 'gateway',
    logger,
  });
  const metricsServer = config.metricsAddress ? await serveMetrics(config.metricsAddress) : null;
  logger.info(
    { role, grpc: role !== 'worker' ? config.grpcAddress : undefined, metrics: config.metricsAddress, namespace: config.namespace },
    'escrow engine started',
  );
  if (embedded) {
    // Where the tools find this engine: npm run audit, quarantine and consume read it by default.
    writeEndpoints(config.dataDir, {
      pid: process.pid,
      grpcAddress: config.grpcAddress,
      natsUrl: embedded.natsUrl,
      databaseUrl: embedded.databaseUrl,
      namespace: config.namespace,
      secretFile: join(config.dataDir, 'dev-secret'),
    });
    process.once('exit', () => removeEndpoints(config.dataDir));
  }
  if (embeddedMode && secret && role !== 'worker') await printWalkthrough(secret, config.grpcAddress);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await engine.stop();
    await stopTracing();
    metricsServer?.close();
    await embedded?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** The development secret of the embedded mode, kept under the data directory so tokens survive restarts. */
function developmentSecret(dataDir: string): string {
  const file = join(dataDir, 'dev-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = `dev-${randomBytes(16).toString('hex')}`;
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}

async function printWalkthrough(secret: string, address: string): Promise<void> {
  const employer = await mintToken(secret, 'employer-1');
  const freelancer = await mintToken(secret, 'freelancer-1');
  const payments = await mintToken(secret, 'payments-service', { roles: ['payments'] });
  // The gateway serves reflection, so grpcurl needs no .proto files.
  const g = `grpcurl -plaintext`;
  console.log(`
Development mode (embedded services). Secret for this run: AUTH_JWT_SECRET=${secret}

Tokens (12 h):
  EMPLOYER=${employer}
  FREELANCER=${freelancer}
  PAYMENTS=${payments}

Walk-through with grpcurl (paste the three variables above first; "grpcurl -plaintext ${address} list" shows the services):
  ${g} -H "authorization: Bearer $PAYMENTS" -d '{"user_id":"employer-1","amount":{"currency_code":"USD","amount":"100.00"},"external_reference":"dep-1"}' ${address} escrow.v1.AccountService/Deposit
  ${g} -H "authorization: Bearer $EMPLOYER" -d '{"project_id":"p1","freelancer_id":"freelancer-1","idempotency_key":"award-1"}' ${address} escrow.v1.MilestoneService/AwardProject
  ${g} -H "authorization: Bearer $EMPLOYER" -d '{"project_id":"p1","freelancer_id":"freelancer-1","amount":{"currency_code":"USD","amount":"40.00"},"description":"logo","idempotency_key":"m-1"}' ${address} escrow.v1.MilestoneService/CreateMilestone
  ${g} -H "authorization: Bearer $FREELANCER" -d '{"milestone_id":"<id from above>","idempotency_key":"rr-1"}' ${address} escrow.v1.MilestoneService/RequestRelease
  ${g} -H "authorization: Bearer $EMPLOYER" -d '{"milestone_id":"<id from above>","idempotency_key":"rel-1"}' ${address} escrow.v1.MilestoneService/ReleaseMilestone
  ${g} -H "authorization: Bearer $FREELANCER" -d '{"user_id":"freelancer-1","currency_code":"USD"}' ${address} escrow.v1.AccountService/GetBalance
`);
}

main().catch((err: unknown) => {
  // Exit codes: 64 usage, 69 a dependency cannot be reached (or nats-server is missing for the embedded default), 78 configuration, 1 anything else.
  if (err instanceof DependencyUnreachable) {
    console.error(err.message);
    process.exit(69);
  }
  console.error(err instanceof Error ? `start-up failed: ${err.message}` : `start-up failed: ${String(err)}`);
  process.exit(1);
});
