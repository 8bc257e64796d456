import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { natsAuthFrom, natsOptions } from '../src/config.js';

/** A fresh namespace for a load run, and its removal. */
export function runNamespace(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export async function dropNamespace(databaseUrl: string, natsUrl: string, namespace: string): Promise<void> {
  const nc = await connect(natsOptions(natsUrl, natsAuthFrom()));
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(namespace.toUpperCase()).catch(() => {});
  } finally {
    await nc.close();
  }
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
  } finally {
    await c.end();
  }
}
