import pg from 'pg';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ignoreFailure } from '../log.js';

// NUMERIC stays a string (pg's default); bigint (int8) too. No amount ever becomes a float.

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** A pool whose connections use the namespace's schema. */
export function createPool(connectionString: string, schema: string, max = 10): pg.Pool {
  // Bounded waits: a database that stops answering makes calls fail (UNAVAILABLE for reads,
  // a retried batch for the worker) instead of hanging.
  const pool = new pg.Pool({
    connectionString,
    max,
    // statement_timeout ends the statement on the server too, so an abandoned one releases its locks.
    options: `-c search_path=${schema} -c statement_timeout=15000`,
    connectionTimeoutMillis: 3_000,
    query_timeout: 15_000,
  });
  // A client that loses its connection (idle, or checked out between two queries) must not
  // crash the process with an unhandled 'error' event; the query in progress or the next one
  // reports the failure, and the worker retries its batch on a fresh connection.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/**
 * Applies the numbered plain-SQL migrations not yet applied, in order, in one transaction
 * under an advisory lock, so several processes starting at once apply each exactly once.
 */
export async function migrate(pool: pg.Pool, schema: string): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`escrow-migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS "${schema}".schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await client.query<{ version: string }>(`SELECT version FROM "${schema}".schema_migrations`)).rows.map((r) => r.version),
    );
    for (const file of files) {
      if (done.has(file)) continue;
      await client.query(`SET LOCAL search_path TO "${schema}"`);
      await client.query(await readFile(join(MIGRATIONS_DIR, file), 'utf8'));
      await client.query(`INSERT INTO "${schema}".schema_migrations (version) VALUES ($1)`, [file]);
      applied.push(file);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(ignoreFailure('a rollback after a failed transaction'));
    throw err;
  } finally {
    client.release();
  }
}

/**
 * The first stream sequence whose messages must be signed (migration 005): recorded by the
 * first process of this version, as the stream's next sequence then; read by every other.
 * `stream.nextSeq` is absent for read-only tools, which only read it. A stream made again
 * since (another creation time) holds nothing an earlier version wrote: then nothing unsigned
 * is trusted (1).
 */
export async function signedSince(pool: pg.Pool, stream: { created: string; nextSeq?: number }): Promise<number> {
  if (stream.nextSeq !== undefined) {
    await pool.query('INSERT INTO event_signing (since_seq, stream_created) VALUES ($1, $2) ON CONFLICT (singleton) DO NOTHING', [
      stream.nextSeq,
      stream.created,
    ]);
    await pool.query('UPDATE event_signing SET stream_created = $1 WHERE stream_created IS NULL', [stream.created]);
  }
  const r = await pool.query<{ since_seq: string; stream_created: string | null }>(
    'SELECT since_seq::text AS since_seq, stream_created FROM event_signing',
  );
  const row = r.rows[0];
  if (!row) return 0;
  if (row.stream_created !== null && row.stream_created !== stream.created) {
    if (stream.nextSeq !== undefined) await pool.query('UPDATE event_signing SET since_seq = 1, stream_created = $1', [stream.created]);
    return 1;
  }
  return Number(row.since_seq);
}
