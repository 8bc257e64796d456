import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';

/**
 * `node dist/src/dev/healthcheck.js [service]`: a container HEALTHCHECK. Exit 0 when the
 * gateway on GRPC_ADDRESS (its port, on 127.0.0.1) answers SERVING, else 1.
 */
const address = process.env.GRPC_ADDRESS ?? '127.0.0.1:50051';
const target = `127.0.0.1:${address.slice(address.lastIndexOf(':') + 1)}`;
const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as unknown as {
  grpc: {
    health: {
      v1: {
        Health: new (
          address: string,
          creds: grpc.ChannelCredentials,
        ) => grpc.Client & {
          Check: (request: object, options: grpc.CallOptions, cb: (err: Error | null, res?: { status: string }) => void) => void;
        };
      };
    };
  };
};
const client = new def.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
client.Check(
  { service: process.argv[2] ?? '' },
  { deadline: Date.now() + 2_500 },
  (err: Error | null, res: { status: string } | undefined) => {
    client.close();
    if (err || res?.status !== 'SERVING') {
      console.error(err ? err.message : `status ${res?.status}`);
      process.exit(1);
    }
    process.exit(0);
  },
);
