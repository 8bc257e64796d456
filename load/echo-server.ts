/**
 * The ceiling of the benchmark: a bare grpc-js server of the same proto that answers every
 * call at once with a canned reply, no auth, no I/O. Driven by the same client code at the
 * same concurrency, it shows what the client, gRPC and the machine allow.
 *   node --import tsx load/echo-server.ts 127.0.0.1:50070
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadEscrowPackage } from '../src/gateway/proto.js';
import type { Reply } from '../src/client.js';

// Like the engine (ESCROW_SOURCE_MAPS off), no source-mapped stacks: the comparison stays fair.
process.setSourceMapsEnabled(false);
const address = process.argv[2] ?? '127.0.0.1:50070';
const pkg = loadEscrowPackage();
const money = (amount: string) => ({ currency_code: 'USD', amount });

function milestone(id: string, status: string) {
  return {
    milestone: {
      id,
      project_id: 'p',
      employer_id: 'e',
      freelancer_id: 'f',
      amount: money('10.00'),
      held: money('10.00'),
      released: money('0.00'),
      returned: money('0.00'),
      status,
      version: 2,
      description: '',
      history: [],
    },
  };
}

const reply = (status: string) => (call: grpc.ServerUnaryCall<Reply, Reply>, cb: grpc.sendUnaryData<Reply>) =>
  cb(null, milestone(call.request.milestone_id || randomUUID(), status));

const server = new grpc.Server();
server.addService(pkg.MilestoneService.service, {
  CreateMilestone: reply('FUNDED'),
  ReleaseMilestone: reply('RELEASED'),
  CancelMilestone: reply('CANCELLED'),
  GetMilestone: reply('FUNDED'),
  ListMilestones: (_call: unknown, cb: grpc.sendUnaryData<Reply>) => cb(null, { milestones: [], next_page_token: '' }),
});
server.addService(pkg.AccountService.service, {
  Deposit: (_call: unknown, cb: grpc.sendUnaryData<Reply>) => cb(null, { operation_id: randomUUID(), status: 'APPLIED' }),
  GetBalance: (_call: unknown, cb: grpc.sendUnaryData<Reply>) =>
    cb(null, { user_id: 'u', available: money('0.00'), held: money('0.00'), incoming: money('0.00') }),
});
server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
