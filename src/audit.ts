import { connect } from '@nats-io/transport-node';
import { natsOptions, toolConfig } from './config.js';
import { EventLog } from './events/log.js';
import { names } from './events/names.js';
import { createPool } from './ledger/db.js';
import { runAudit } from './ledger/auditor.js';

/**
 * `npm run audit`: checks a deployment's ledger against its stream. Needs DATABASE_URL,
 * NATS_URL and ESCROW_NAMESPACE. Prints the report as one JSON line; exits 1 naming what broke.
 */
const config = await toolConfig();
if (!config.databaseUrl || !config.natsUrl) {
  console.error('audit needs DATABASE_URL and NATS_URL (and ESCROW_NAMESPACE unless it is "escrow")');
  process.exit(64);
}
const signingSecret = config.eventKey ?? config.authJwtSecret;
if (!signingSecret) {
  console.error("audit needs the deployment's ESCROW_EVENT_KEY or AUTH_JWT_SECRET, to tell the engine's events from forgeries");
  process.exit(64);
}
const nc = await connect(natsOptions(config.natsUrl, config.natsAuth));
const log = await EventLog.open(nc, names(config.namespace), {
  duplicateWindowMs: config.duplicateWindowMs,
  signingSecret,
  allowUnsafeReplicas: true,
}); // read-only
const pool = createPool(config.databaseUrl, config.namespace, 2);
try {
  const report = await runAudit(log, pool);
  for (const v of report.violations) console.error(`VIOLATION ${v.check}: ${v.detail}`);
  console.log(JSON.stringify({ audit: report.ok ? 'pass' : 'fail', ...report }));
  process.exitCode = report.ok ? 0 : 1;
} finally {
  await pool.end();
  await nc.close();
}
