import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { describe, expect, it } from 'vitest';
import { useEngine } from './helpers/engine.js';
import type { Reply } from '../src/client.js';

const t = useEngine({ worker: false });

describe('operability', () => {
  it('answers grpc.health.v1 Check for the server and each service', async () => {
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as Reply;
    const client = new def.grpc.health.v1.Health(t.config.grpcAddress, grpc.credentials.createInsecure());
    for (const service of ['', 'escrow.v1.MilestoneService', 'escrow.v1.AccountService']) {
      const r = await new Promise<Reply>((resolve, reject) =>
        client.Check({ service }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))),
      );
      expect(r.status).toBe('SERVING');
    }
    client.close();
  });

  it('offers server reflection listing the escrow services and grpc.health.v1', async () => {
    const def = grpc.loadPackageDefinition(
      protoLoader.loadSync('grpc/reflection/v1alpha/reflection.proto', {
        keepCase: true,
        includeDirs: ['node_modules/@grpc/reflection/build/proto'],
      }),
    ) as Reply;
    const client = new def.grpc.reflection.v1alpha.ServerReflection(t.config.grpcAddress, grpc.credentials.createInsecure());
    const stream = client.ServerReflectionInfo();
    const answer = await new Promise<Reply>((resolve, reject) => {
      stream.on('data', resolve);
      stream.on('error', reject);
      stream.write({ list_services: '' });
    });
    stream.end();
    const names = answer.list_services_response.service.map((s: { name: string }) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'escrow.v1.MilestoneService',
        'escrow.v1.AccountService',
        'escrow.v1.ReviewService',
        'grpc.health.v1.Health',
      ]),
    );
    client.close();
  });
});
