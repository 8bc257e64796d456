import { connect } from '@nats-io/transport-node';
import { natsOptions, toolConfig } from './config.js';
import { EventLog } from './events/log.js';
import { names } from './events/names.js';
import { createPool } from './ledger/db.js';
import { dropQuarantined, listQuarantine, replayQuarantined } from './ledger/quarantine.js';

/**
 * `npm run quarantine -- list [--all] | replay SEQ [NOTE] | drop SEQ [NOTE]`: what the ledger
 * moved aside (DATABASE_URL, NATS_URL, ESCROW_NAMESPACE; replay also the deployment's
 * ESCROW_EVENT_KEY or AUTH_JWT_SECRET). Exit 0 on success, 1 when nothing was done, 64 on usage.
 */
const [command, arg, ...rest] = process.argv.slice(2);
const config = await toolConfig();
if (!config.databaseUrl || !['list', 'replay', 'drop'].includes(command ?? '')) {
  console.error(
    'usage: npm run quarantine -- list [--all] | replay SEQ [NOTE] | drop SEQ [NOTE]   (needs DATABASE_URL; replay also NATS_URL)',
  );
  process.exit(64);
}
const pool = createPool(config.databaseUrl, config.namespace, 2);
try {
  if (command === 'list') {
    for (const q of await listQuarantine(pool, { all: arg === '--all' })) console.log(JSON.stringify(q));
  } else {
    const seq = Number(arg);
    if (!Number.isSafeInteger(seq) || seq <= 0) {
      console.error('SEQ must be the stream sequence of a quarantined message (see list)');
      process.exit(64);
    }
    const note = rest.join(' ') || `${command} by ${process.env.USER ?? 'an operator'}`;
    if (command === 'drop') {
      const done = await dropQuarantined(pool, seq, note);
      console.log(done ? `dropped ${seq}` : `no open entry at ${seq}`);
      process.exitCode = done ? 0 : 1;
    } else {
      const secret = config.eventKey ?? config.authJwtSecret;
      if (!config.natsUrl || !secret) {
        console.error("replay needs NATS_URL and the deployment's ESCROW_EVENT_KEY or AUTH_JWT_SECRET (to publish the outcome)");
        process.exit(64);
      }
      const nc = await connect(natsOptions(config.natsUrl, config.natsAuth));
      try {
        const log = await EventLog.open(nc, names(config.namespace), {
          duplicateWindowMs: config.duplicateWindowMs,
          signingSecret: secret,
          allowUnsafeReplicas: true,
        });
        const result = await replayQuarantined(pool, log, seq, note);
        console.log(
          result === 'replayed'
            ? `replayed ${seq}`
            : result === 'unsigned'
              ? `${seq} is not signed by this deployment: drop it, it is not money`
              : `no open entry at ${seq}`,
        );
        process.exitCode = result === 'replayed' ? 0 : 1;
      } finally {
        await nc.close();
      }
    }
  }
} finally {
  await pool.end();
}
