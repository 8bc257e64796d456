import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * An engine role as a separate OS process (`node --import tsx src/main.ts <role>`), for the
 * tests that kill or restart it and for the harness that spreads load over several gateways.
 */
export class EngineProcess {
  child: ChildProcess | null = null;
  output = '';

  constructor(
    readonly role: 'gateway' | 'worker' | 'all',
    readonly env: Record<string, string>,
  ) {}

  get address(): string {
    return this.env.GRPC_ADDRESS ?? '127.0.0.1:50051';
  }

  static async start(role: 'gateway' | 'worker' | 'all', env: Record<string, string>): Promise<EngineProcess> {
    const p = new EngineProcess(role, env);
    await p.spawn();
    return p;
  }

  /** Starts the process and waits until its gRPC port answers (a worker: a short settle). */
  async spawn(): Promise<void> {
    this.output = '';
    // ESCROW_CPU_PROFILE_DIR: every engine process writes a V8 CPU profile there when it stops (SIGTERM).
    const profile = process.env.ESCROW_CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.ESCROW_CPU_PROFILE_DIR}`] : [];
    const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'src/main.ts', this.role], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout.on('data', (d) => (this.output = (this.output + String(d)).slice(-10_000)));
    child.stderr.on('data', (d) => (this.output = (this.output + String(d)).slice(-10_000)));
    const until = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`engine process exited early (${child.exitCode}): ${this.output}`);
      if (this.role === 'worker') {
        await sleep(1_500);
        const code = child.exitCode as number | null; // changed while asleep
        if (code !== null) throw new Error(`worker exited early (${code}): ${this.output}`);
        return;
      }
      if (await portOpen(Number(this.address.split(':').pop()))) return;
      if (Date.now() > until) throw new Error(`engine process did not start: ${this.output}`);
      await sleep(100);
    }
  }

  /** SIGKILL: no shutdown hook runs. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL', 0);
  }

  /** SIGTERM, then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM', 10_000);
  }

  private async signal(signal: NodeJS.Signals, killAfterMs: number): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = killAfterMs > 0 ? setTimeout(() => child.kill('SIGKILL'), killAfterMs) : null;
      child.once('exit', () => {
        if (timer) clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
  }

  /** The process's RSS in bytes, from /proc (Linux). */
  rssBytes(): number {
    const pid = this.child?.pid;
    if (!pid) return 0;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      return kb ? Number(kb) * 1024 : 0;
    } catch {
      return 0;
    }
  }
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The load tools measure the engine, not its per-caller limits: a handful of users carry
 * thousands of calls at once, so the gateways they start lift those limits (the suites that
 * test the limits set them back).
 */
export const LOAD_TOOL_LIMITS: Record<string, string> = {
  ESCROW_CALLER_INFLIGHT_MAX: '1000000',
  ESCROW_CALLER_WRITES_PER_S: '1000000',
  ESCROW_CALLER_READS_PER_S: '1000000',
};
