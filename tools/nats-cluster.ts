import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../src/dev/embedded.js';
import { portOpen, sleep } from './processes.js';

/**
 * A JetStream cluster of nats-server processes on loopback, for the cluster suite
 * (test/cluster) and the bench's cluster figures: a current server (2.10+) with
 * `sync_interval: always`, every route through a TCP proxy of its own so that one node can be
 * cut off from the others (a partition) and healed, and each node's monitoring port to read
 * the meta leader from.
 */

/**
 * A current nats-server (2.10+): NATS_SERVER_BIN, else the one .ci/run builds from
 * ../shared/nats into .data/nats-2.10/, else null (the caller says what it skips).
 */
export function currentNatsServer(): string | null {
  const given = process.env.NATS_SERVER_BIN;
  if (given && existsSync(given)) return given;
  const built = resolve(import.meta.dirname, '../.data/nats-2.10/nats-server');
  return existsSync(built) ? built : null;
}

/** A TCP proxy: `drop()` resets every connection and refuses new ones until `restore()`. */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private refusing = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  async start(port?: number): Promise<number> {
    this.port = port ?? (await freePort());
    this.server = createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = netConnect(this.targetPort, '127.0.0.1');
      this.sockets.add(client);
      this.sockets.add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const server = this.server;
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', () => r()));
    return this.port;
  }

  drop(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.refusing = false;
  }

  async stop(): Promise<void> {
    this.drop();
    const server = this.server;
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  }
}

/** One node of the cluster: its own ports, store and config file; stopped and started at will. */
export class NatsNode {
  child: ChildProcess | null = null;
  output = '';

  constructor(
    readonly name: string,
    readonly bin: string,
    readonly port: number,
    readonly monitorPort: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts (again) on the same ports and store. */
  async start(): Promise<void> {
    this.output = '';
    const child = spawn(this.bin, ['-c', join(this.dir, 'node.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (d: Buffer) => (this.output = (this.output + d.toString()).slice(-8_000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    for (let i = 0; i < 100 && !(await portOpen(this.port)); i++) {
      if (child.exitCode !== null) throw new Error(`nats-server ${this.name} exited (${child.exitCode}): ${this.output}`);
      await sleep(100);
    }
  }

  /** SIGTERM lets the node shut down cleanly (lame duck skipped); SIGKILL is a crash. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((r) => {
      const timer = signal === 'SIGKILL' ? null : setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        if (timer) clearTimeout(timer);
        r();
      });
      child.kill(signal);
    });
  }

  /** The node's /jsz monitoring answer (meta leader, streams), or null while it does not answer. */
  async jsz(): Promise<{
    meta_cluster?: { leader?: string; cluster_size?: number; replicas?: { name: string; current: boolean }[] };
  } | null> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.monitorPort}/jsz`, { signal: AbortSignal.timeout(1_000) });
      return res.ok
        ? ((await res.json()) as { meta_cluster?: { leader?: string; replicas?: { name: string; current: boolean }[] } })
        : null;
    } catch {
      return null;
    }
  }

  /** Routes this node has to others (from /routez). */
  async routes(): Promise<number | null> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.monitorPort}/routez`, { signal: AbortSignal.timeout(1_000) });
      return res.ok ? ((await res.json()) as { num_routes: number }).num_routes : null;
    } catch {
      return null;
    }
  }
}

export interface ClusterOptions {
  size?: number;
  /** A binary per node (a cluster of mixed versions, as during an upgrade); default the one given to start. */
  bins?: string[];
  /** `jetstream { sync_interval: always }`: every append fsynced before it is acknowledged. Default true. */
  syncAlways?: boolean;
}

/** A JetStream cluster on loopback; every route between two nodes passes a proxy of the pair. */
export class NatsCluster {
  /** proxies[i][j]: what node i dials to reach node j's route port. */
  private readonly proxies: (TcpProxy | null)[][];

  private constructor(
    readonly nodes: NatsNode[],
    proxies: (TcpProxy | null)[][],
    private readonly root: string,
  ) {
    this.proxies = proxies;
  }

  /** Starts `size` nodes of the given binary (see currentNatsServer) and waits for a meta leader. */
  static async start(bin: string, o: ClusterOptions = {}): Promise<NatsCluster> {
    const size = o.size ?? 3;
    const root = mkdtempSync(join(tmpdir(), 'escrow-cluster-'));
    // Every port of the cluster at once, all held until all are chosen, so no two are the same
    // (ports chosen one by one could repeat: a node then failed to bind its monitor port).
    const ports = await distinctFreePorts(3 * size + size * (size - 1));
    const [clientPorts, monitorPorts, routePorts] = [ports.splice(0, size), ports.splice(0, size), ports.splice(0, size)];
    const proxies: (TcpProxy | null)[][] = [];
    for (let i = 0; i < size; i++) {
      proxies.push([]);
      for (let j = 0; j < size; j++) {
        if (i === j) proxies[i]!.push(null);
        else {
          const p = new TcpProxy(routePorts[j]!);
          await p.start(ports.shift());
          proxies[i]!.push(p);
        }
      }
    }
    const nodes = clientPorts.map((port, i) => {
      const dir = join(root, `n${i}`);
      const node = new NatsNode(`escrow-node-${i}`, o.bins?.[i] ?? bin, port, monitorPorts[i]!, dir);
      const routes = proxies[i]!.filter((p): p is TcpProxy => p !== null).map((p) => `nats-route://127.0.0.1:${p.port}`);
      mkdirSync(dir, { recursive: true });
      // sync_interval exists from 2.10 on: a node of another binary (an older one) goes without.
      writeNodeConfig(node, routePorts[i]!, routes, (o.syncAlways ?? true) && node.bin === bin);
      return node;
    });
    const cluster = new NatsCluster(nodes, proxies, root);
    await Promise.all(nodes.map((n) => n.start()));
    await cluster.metaLeader(30_000, true);
    return cluster;
  }

  /** Client URLs of every node, comma-separated, as NATS_URL takes them. */
  get urls(): string {
    return this.nodes.map((n) => n.url).join(',');
  }

  /** The node named `name` (a leader's name as the server reports it). */
  node(name: string): NatsNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node named ${name}`);
    return n;
  }

  /**
   * The JetStream meta leader's name, waiting up to `waitMs` for one to be elected; with
   * `whole`, also until it counts every node of the cluster as a current peer.
   */
  async metaLeader(waitMs = 15_000, whole = false): Promise<string> {
    const until = Date.now() + waitMs;
    for (;;) {
      for (const n of this.nodes.filter((x) => x.running)) {
        const meta = (await n.jsz())?.meta_cluster;
        const peers = meta?.replicas ?? [];
        if (meta?.leader && (!whole || (peers.length === this.nodes.length - 1 && peers.every((p) => p.current)))) return meta.leader;
      }
      if (Date.now() > until) throw new Error('the cluster elected no JetStream meta leader');
      await sleep(200);
    }
  }

  /** Cuts node `k` off from the others: its routes, both ways, are reset and refused. Clients still reach it. */
  partition(k: number): void {
    for (let i = 0; i < this.nodes.length; i++) {
      this.proxies[i]![k]?.drop();
      this.proxies[k]![i]?.drop();
    }
  }

  heal(k: number): void {
    for (let i = 0; i < this.nodes.length; i++) {
      this.proxies[i]![k]?.restore();
      this.proxies[k]![i]?.restore();
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop('SIGKILL')));
    await Promise.all(this.proxies.flat().map((p) => p?.stop() ?? Promise.resolve()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** `n` ports free on the loopback, distinct: each is listened on until all are, then all are let go. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolveServer, reject) => {
          const srv = createServer();
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => resolveServer(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => (srv.address() as { port: number }).port);
  await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  return ports;
}

function writeNodeConfig(node: NatsNode, routePort: number, routes: string[], syncAlways: boolean): void {
  const store = join(node.dir, 'store');
  const conf = [
    `server_name: ${node.name}`,
    `listen: 127.0.0.1:${node.port}`,
    `http: 127.0.0.1:${node.monitorPort}`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(store)}`,
    ...(syncAlways ? ['  sync_interval: always'] : []),
    `}`,
    `cluster {`,
    `  name: escrow-test`,
    `  listen: 127.0.0.1:${routePort}`,
    // Routes only through the proxies: what a node tells the others to dial for it (gossip of
    // implicit routes) is a closed port, so no route bypasses the proxy a partition cuts.
    `  advertise: "127.0.0.1:1"`,
    `  routes: [${routes.map((r) => JSON.stringify(r)).join(', ')}]`,
    `}`,
  ].join('\n');
  writeFileSync(join(node.dir, 'node.conf'), conf + '\n');
}
