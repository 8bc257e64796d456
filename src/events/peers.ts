import { connect as netConnect } from 'node:net';

/**
 * The nats-server version of every node that holds a replica of the stream, found without
 * the system account: a server sends its INFO (name and version) to anyone who opens a TCP
 * connection, before any authentication, and the connected server's INFO lists the client
 * URLs of every node of its cluster (`connect_urls`). The stream's info names its peers.
 */

export interface ServerInfo {
  server_name: string;
  version: string;
}

/** The INFO line a nats-server sends first on a new connection; null when it does not answer within `timeoutMs`. */
export function readServerInfo(hostPort: string, timeoutMs = 1_000): Promise<ServerInfo | null> {
  const { host, port } = parseHostPort(hostPort);
  return new Promise((resolve) => {
    let buffered = '';
    let socket: ReturnType<typeof netConnect>;
    try {
      socket = netConnect({ host, port });
    } catch {
      resolve(null); // an address that is not one (a bad port in an advertised URL)
      return;
    }
    // A deadline for the whole exchange, not an idle timeout: a trickle of bytes cannot hold it open.
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (info: ServerInfo | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(info);
    };
    socket.on('error', () => done(null));
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      const end = buffered.indexOf('\r\n');
      if (end < 0) {
        if (buffered.length > 65_536) done(null);
        return;
      }
      const line = buffered.slice(0, end);
      if (!line.startsWith('INFO ')) {
        done(null);
        return;
      }
      try {
        const info = JSON.parse(line.slice(5)) as Partial<ServerInfo>;
        done(
          typeof info.server_name === 'string' && typeof info.version === 'string'
            ? { server_name: info.server_name, version: info.version }
            : null,
        );
      } catch {
        done(null);
      }
    });
  });
}

/** `nats://host:port`, `host:port` or `[v6]:port` (default port 4222). */
export function parseHostPort(url: string): { host: string; port: number } {
  const bare = url
    .replace(/^[a-z+]+:\/\//i, '')
    .replace(/^[^@]*@/, '')
    .replace(/\/.*$/, '');
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(bare) ?? /^([^:]+)(?::(\d+))?$/.exec(bare);
  return { host: m?.[1] ?? '127.0.0.1', port: m?.[2] ? Number(m[2]) : 4222 };
}

/**
 * Name -> version of every node reachable at `urls` (the connected server's INFO and the
 * cluster's client URLs). A node that does not answer is simply absent.
 */
export async function clusterVersions(urls: Iterable<string>, known: ServerInfo[] = []): Promise<Map<string, string>> {
  const versions = new Map(known.map((k) => [k.server_name, k.version]));
  const infos = await Promise.all([...new Set(urls)].map((u) => readServerInfo(u)));
  for (const info of infos) if (info) versions.set(info.server_name, info.version);
  return versions;
}
