import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/dev/embedded.js';
import { portOpen, sleep } from '../../tools/processes.js';

/**
 * What the fault suite breaks on purpose: nats-server processes of its own (never the
 * machine's shared one), and a TCP proxy in front of PostgreSQL that can drop and refuse
 * connections like a database restart.
 */

export class NatsServer {
  child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    readonly store: string,
    private readonly extra: string[],
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(extra: string[] = [], port?: number): Promise<NatsServer> {
    const s = new NatsServer(port ?? (await freePort()), mkdtempSync(join(tmpdir(), 'escrow-nats-')), extra);
    await s.resume();
    return s;
  }

  /** Starts (again) on the same port and store. */
  async resume(): Promise<void> {
    this.child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.store, ...this.extra], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100 && !(await portOpen(this.port)); i++) await sleep(100);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((r) => {
      child.once('exit', () => r());
      child.kill(signal);
    });
  }

  async destroy(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(this.store, { recursive: true, force: true });
  }
}

/** A three-node JetStream cluster on loopback ports. */
export async function natsCluster(size = 3): Promise<NatsServer[]> {
  const clientPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  return Promise.all(
    clientPorts.map((port, i) =>
      NatsServer.start(
        ['-n', `escrow-node-${i}`, '--cluster_name', 'escrow-test', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes],
        port,
      ),
    ),
  );
}

/** A TCP proxy that can drop and refuse connections (shared with the cluster suite). */
export { TcpProxy } from '../../tools/nats-cluster.js';
