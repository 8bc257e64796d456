import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the embedded mode runs, written under its data folder so every tool (npm run audit,
 * npm run quarantine, npm run consume) finds it without being told: the gRPC address, the
 * NATS and PostgreSQL URLs, the namespace, and where the development secret is.
 */
export interface Endpoints {
  pid: number;
  grpcAddress: string;
  natsUrl: string;
  databaseUrl: string;
  namespace: string;
  secretFile: string;
}

const FILE = 'endpoints.json';

export function writeEndpoints(dataDir: string, e: Endpoints): void {
  const path = join(dataDir, FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(e, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** The endpoints of an embedded engine running on `dataDir`, or null (none written, or its process is gone). */
export function readEndpoints(dataDir: string): Endpoints | null {
  const path = join(dataDir, FILE);
  if (!existsSync(path)) return null;
  try {
    const e = JSON.parse(readFileSync(path, 'utf8')) as Endpoints;
    return processAlive(e.pid) ? e : null;
  } catch {
    return null;
  }
}

export function removeEndpoints(dataDir: string): void {
  try {
    unlinkSync(join(dataDir, FILE));
  } catch {
    // Already gone.
  }
}

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
