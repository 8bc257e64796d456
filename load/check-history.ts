/**
 * `npm run check-history -- --history FILE`: proves a recorded history (JSON lines of
 * load/history.ts CallRecord, e.g. from `npm run race -- --history-out FILE`) against a
 * deployment's event log, and runs the ledger's auditor beside it. Needs NATS_URL,
 * DATABASE_URL, ESCROW_NAMESPACE, and ESCROW_EVENT_KEY or AUTH_JWT_SECRET (to tell the
 * engine's events from forgeries). Prints each problem, then one JSON line; exits 1 on any.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { natsOptions, toolConfig } from '../src/config.js';
import { EventLog } from '../src/events/log.js';
import { names } from '../src/events/names.js';
import { runAudit } from '../src/ledger/auditor.js';
import { createPool } from '../src/ledger/db.js';
import { checkHistory, parseHistory } from './history.js';

const { values: a } = parseArgs({ options: { history: { type: 'string' }, 'no-audit': { type: 'boolean', default: false } } });
const config = await toolConfig();
const secret = config.eventKey ?? config.authJwtSecret;
if (!a.history || !config.natsUrl || !secret || (!a['no-audit'] && !config.databaseUrl)) {
  console.error(
    'check-history needs --history FILE, NATS_URL, DATABASE_URL (or --no-audit), ESCROW_NAMESPACE and ESCROW_EVENT_KEY or AUTH_JWT_SECRET',
  );
  process.exit(64);
}
const records = parseHistory(readFileSync(a.history, 'utf8'));
const nc = await connect(natsOptions(config.natsUrl, config.natsAuth));
try {
  const log = await EventLog.open(nc, names(config.namespace), {
    duplicateWindowMs: config.duplicateWindowMs,
    signingSecret: secret,
    allowUnsafeReplicas: true,
  }); // read-only
  const verdict = await checkHistory(log, records);
  let audit: 'pass' | 'fail' | 'skipped' = 'skipped';
  let violations: unknown[] = [];
  if (!a['no-audit']) {
    const pool = createPool(config.databaseUrl!, config.namespace, 2);
    try {
      const report = await runAudit(log, pool);
      audit = report.ok ? 'pass' : 'fail';
      violations = report.violations;
    } finally {
      await pool.end();
    }
  }
  for (const p of verdict.problems) console.error(`VIOLATION ${p}`);
  console.log(
    `history: ${verdict.calls} calls on ${verdict.milestones} milestones; ${verdict.problems.length} problems; ${verdict.unansweredEndings} endings no client was told of; ${verdict.refusedThenApplied} copies refused before their twin took effect; auditor ${audit}`,
  );
  console.log(JSON.stringify({ checkHistory: { ...verdict, audit, violations } }));
  process.exitCode = verdict.problems.length === 0 && audit !== 'fail' ? 0 : 1;
} finally {
  await nc.close();
}
