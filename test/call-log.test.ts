import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { loadEscrowPackage } from '../src/gateway/proto.js';
import { EscrowClient, PAYMENTS, TEST_SECRET, usd } from './helpers/client.js';
import { dropNamespace, EngineProcess, freshNamespace } from './helpers/engine.js';
import { key } from './helpers/flows.js';
import { mintToken } from '../src/dev/tokens.js';

describe('one log line per call', () => {
  it("names the RPC, the caller, the milestone, the code and reason, the time, and the request id (the client's, echoed back), never the token", async () => {
    const ns = freshNamespace();
    const engine = await EngineProcess.start('all', ns, { LOG_LEVEL: 'info' });
    const c = new EscrowClient(engine.address);
    try {
      await c.a('Deposit', PAYMENTS, { user_id: 'emp-log', amount: usd('5.00'), external_reference: key() });
      // A call with the client's own request id, through a raw client to read the response headers.
      const pkg = loadEscrowPackage();
      const raw = new pkg.MilestoneService(engine.address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
        Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;
      const token = await mintToken(TEST_SECRET, 'emp-log');
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${token}`);
      md.set('x-request-id', 'req-from-client-1');
      const echoed = await new Promise<string>((resolve) => {
        const call = raw.GetMilestone!({ milestone_id: '00000000-0000-8000-8000-000000000000' }, md, () => {});
        call.on('metadata', (m: grpc.Metadata) => resolve(String(m.get('x-request-id')[0])));
      });
      raw.close();
      expect(echoed).toBe('req-from-client-1');
      await new Promise((r) => setTimeout(r, 300));
      const lines = engine.output
        .split('\n')
        .filter((l) => l.includes('"msg":"call"'))
        .map((l) => JSON.parse(l));
      const mine = lines.find((l) => l.requestId === 'req-from-client-1');
      expect(mine).toMatchObject({
        rpc: 'GetMilestone',
        caller: 'emp-log',
        milestone: '00000000-0000-8000-8000-000000000000',
        code: 'NOT_FOUND',
        reason: 'MILESTONE_NOT_FOUND',
      });
      expect(typeof mine.ms).toBe('number');
      expect(lines.find((l) => l.rpc === 'Deposit')).toMatchObject({ caller: 'payments-svc', code: 'OK' });
      expect(engine.output).not.toContain(token);
    } finally {
      c.close();
      await engine.stop();
      await dropNamespace(ns);
    }
  });
});
