import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useEngine } from './helpers/engine.js';
import { balance } from './helpers/flows.js';

const t = useEngine({ env: { ESCROW_GRPC_CONNECTIONS_MAX: '20', ESCROW_GRPC_IDLE_MS: '600' } });

/** Opens a raw TCP socket to the gateway that never sends anything; resolves once connected, records when the server closes it. */
function idleSocket(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, closed: () => closed }));
    socket.on('close', () => (closed = true));
    // Read what the server sends (its HTTP/2 settings), or 'close' would wait for the reader.
    socket.resume();
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

describe('gRPC connections are bounded', () => {
  it('beyond the cap new connections are closed at once; idle ones (never speaking HTTP/2) after the idle limit; then clients connect again', async () => {
    const port = Number(t.config.grpcAddress.split(':').pop());
    const sockets = await Promise.all(Array.from({ length: 50 }, () => idleSocket(port)));
    await new Promise((r) => setTimeout(r, 200));
    const openSoon = sockets.filter((s) => !s.closed()).length;
    expect(openSoon).toBeLessThanOrEqual(20);
    expect(openSoon).toBeGreaterThan(0);
    // The idle limit closes the rest.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(sockets.filter((s) => !s.closed()).length).toBe(0);
    // A real client is served.
    expect(await balance(t.client, 'anyone')).toEqual({ available: '0.00', held: '0.00', incoming: '0.00' });
    for (const s of sockets) s.socket.destroy();
  });
});

describe('a client that speaks keeps its connection', () => {
  it('a watch stream lasts longer than the idle limit', async () => {
    const { deposit, funded, key } = await import('./helpers/flows.js');
    await deposit(t.client, 'emp-watch', '5.00');
    const id = await funded(t.client, 'emp-watch', 'fl-watch', '5.00', 'p-watch');
    const stream = t.client.stream('WatchMilestone', await t.client.token('emp-watch'), { milestone_id: id });
    const seen: string[] = [];
    const ended = new Promise<string>((resolve) => {
      stream.on('data', (m: { milestone: { status: string } }) => seen.push(m.milestone.status));
      stream.on('error', (e: Error) => resolve(`error ${e.message}`));
      stream.on('end', () => resolve('end'));
    });
    await new Promise((r) => setTimeout(r, 1_500));
    await t.client.m('ReleaseMilestone', 'emp-watch', { milestone_id: id, idempotency_key: key() });
    expect(await ended).toBe('end');
    expect(seen).toEqual(['FUNDED', 'RELEASED']);
  });
});
