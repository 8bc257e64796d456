import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The directory of the .proto files: the contract under proto/escrow/v1. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

export const PROTO_FILES = ['escrow/v1/milestone.proto', 'escrow/v1/account.proto', 'escrow/v1/review.proto'];

/** Field names stay as in the .proto (snake_case); enums as their names; 64-bit ints as strings. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export interface EscrowPackage {
  MilestoneService: grpc.ServiceClientConstructor;
  AccountService: grpc.ServiceClientConstructor;
  ReviewService: grpc.ServiceClientConstructor;
}

export function loadEscrowDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
}

export function loadEscrowPackage(): EscrowPackage {
  const definition = loadEscrowDefinition();
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { escrow: { v1: EscrowPackage } };
  return loaded.escrow.v1;
}

/** google.rpc.Status and ErrorInfo, to encode grpc-status-details-bin. */
export function loadRpcStatusTypes(): { Status: protobuf.Type; ErrorInfo: protobuf.Type } {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(PROTO_DIR, target));
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
  return { Status: root.lookupType('google.rpc.Status'), ErrorInfo: root.lookupType('google.rpc.ErrorInfo') };
}
