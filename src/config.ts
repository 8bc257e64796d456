import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { Decimal } from 'decimal.js';
import { DEFAULT_POLICY, type FeeRule, type TermsPolicy } from '../actors/terms.js';
import { InvalidArgument } from './errors.js';
import { parseAmount } from './money.js';

/**
 * The one module that reads the environment. Every setting is validated at start-up; a bad
 * value stops the process with the name of the key.
 */

export interface Config {
  /** PostgreSQL URL. Unset: `npm start` runs an embedded PostgreSQL under ./.data. */
  databaseUrl: string | undefined;
  /** NATS URL. Unset: `npm start` runs nats-server from the PATH with data under ./.data. */
  natsUrl: string | undefined;
  /** HS256 secret for bearer tokens. Unset: a development secret is generated (embedded mode only). */
  authJwtSecret: string | undefined;
  /** The secret events are signed with (ESCROW_EVENT_KEY, 16+ characters). Unset: AUTH_JWT_SECRET. */
  eventKey: string | undefined;
  /**
   * Tokens from an identity provider (the production way): AUTH_JWKS_FILE (a JWKS JSON file,
   * re-read when it changes) or AUTH_JWKS_URL (fetched, cached, refetched for an unknown key
   * id); EdDSA, ES256 or RS256. AUTH_ISSUER and AUTH_AUDIENCE are required with a JWKS, and
   * checked on every token (HS256 ones too) when set.
   */
  auth: { jwksFile: string | undefined; jwksUrl: string | undefined; issuer: string | undefined; audience: string | undefined };
  /** GRPC_TLS_CERT and GRPC_TLS_KEY (PEM files): TLS on the gRPC port; with GRPC_TLS_CLIENT_CA, clients must show a certificate it signed (mTLS). */
  grpcTls: { cert: string; key: string; clientCa: string | undefined } | null;
  /** The engine's own NATS credentials: NATS_USER and NATS_PASSWORD, NATS_TOKEN, or NATS_CREDS (a .creds file). */
  natsAuth: NatsAuth;
  /** gRPC listen address. Default 127.0.0.1:50051. */
  grpcAddress: string;
  /** Where /metrics (Prometheus) is served, host:port. Unset: not served. */
  metricsAddress: string | undefined;
  /** Names the stream (upper case), subjects, consumers and Postgres schema. Default "escrow". */
  namespace: string;
  /** pino level. Default "info". */
  logLevel: string;
  /** Where embedded services keep their data. Default ./.data. */
  dataDir: string;
  /** Most commands waiting in one milestone's mailbox. Default 64. */
  mailboxMax: number;
  /** Most actors kept in memory; the least recently used beyond it are evicted. Default 10000. */
  actorsMax: number;
  /** An actor idle this long is evicted. Default 60000. */
  actorIdleMs: number;
  /** How long CreateMilestone waits for the funding outcome before answering PENDING_FUNDING. Default 5000. */
  fundingWaitMs: number;
  /** ESCROW_RESERVATION_TTL_MS: a funding reservation no milestone consumed for this long is given back. */
  reservationTtlMs: number;
  /**
   * ESCROW_PROJECT_AWARDS: who brings a project into being. `open` (the default): its
   * employer, by AwardProject or its first CreateMilestone. `marketplace`: only a service with
   * the marketplace role (AwardProject), so no caller can claim or block a project id.
   */
  projectAwards: 'open' | 'marketplace';
  /** How long Deposit and Withdraw wait for the ledger before answering PENDING. Default 5000. */
  ledgerWaitMs: number;
  /** Most events the ledger worker applies in one transaction. Default 256. */
  ledgerBatchMax: number;
  /** How often a standby ledger worker tries to take the lease from the active one. Default 1000. */
  ledgerStandbyPollMs: number;
  /** JetStream duplicate window, the first line against repeated appends. Default 120000. */
  duplicateWindowMs: number;
  /** Replicas of the stream when this process creates it: 3 on a JetStream cluster. Default 1. */
  streamReplicas: number;
  /**
   * How long an append or read is tried again while a JetStream cluster has no leader for the
   * stream (a node lost, a leader change), never past the call's deadline. Default 2000; 0: not retried.
   */
  logRetryMs: number;
  /**
   * The stream's byte limit (ESCROW_STREAM_MAX_BYTES, default 10 GiB): a warning from 80% on,
   * and at it new commands are refused (UNAVAILABLE EVENT_LOG_FULL); old events are never
   * discarded. ESCROW_STREAM_MAX_MESSAGE_BYTES (default 65536): the largest event stored.
   */
  streamMaxBytes: number;
  streamMaxMessageBytes: number;
  /**
   * Accept a replicated stream on a nats-server older than 2.9.21, whose replicated streams do
   * not serialize conditional appends. Unsafe with more than one gateway; for the fault suite.
   * Default off.
   */
  unsafeReplicatedStream: boolean;
  /** Largest gRPC message accepted, in bytes. Default 65536. */
  grpcMaxMessageBytes: number;
  /** Most calls a gateway works on at once; beyond it calls get RESOURCE_EXHAUSTED. Default 20000. */
  inflightMax: number;
  /**
   * Per-caller limits (src/gateway/limits.ts): ESCROW_INFLIGHT_RESERVED (default 10% of
   * ESCROW_INFLIGHT_MAX) kept for the payments and arbiter roles; ESCROW_CALLER_INFLIGHT_MAX
   * (512) calls of one user in progress; ESCROW_CALLER_WRITES_PER_S / ESCROW_CALLER_READS_PER_S
   * (2000 each, bursts of twice that) per user; ESCROW_WATCH_PER_CALLER_MAX (32) open watch
   * streams per user, each ended after ESCROW_WATCH_MAX_AGE_MS (3600000).
   */
  callerLimits: {
    reservedForRoles: number;
    perCallerInflightMax: number;
    writesPerS: number;
    readsPerS: number;
    watchesPerCallerMax: number;
    watchMaxAgeMs: number;
  };
  /**
   * Connections of the gRPC port: most open at once (beyond it new ones are closed at once;
   * default 1000), closed after this long without a call (also a socket that never speaks
   * HTTP/2; default 300000), and after this age with a grace for calls in flight (so clients
   * rebalance over gateways; default 1800000). The gateway pings an idle connection with calls
   * every ESCROW_GRPC_KEEPALIVE_MS (default 60000) and drops it without an answer in 20 s.
   */
  grpcConnections: { max: number; idleMs: number; maxAgeMs: number; keepaliveMs: number };
  /**
   * Map error stacks to the TypeScript sources. Off by default: with it, every error a
   * library creates (NATS builds one per request) pays for source-mapping its stack.
   */
  sourceMaps: boolean;
  /**
   * Fault injection for the fault suite only: the worker waits this long after commit before
   * publishing the batch's outcomes, widening the window a kill leaves them in the outbox. Default 0.
   */
  faultPublishDelayMs: number;
  /** ESCROW_FAULT_FEE_DECISION_DELAY_MS, fault injection for tests: a gateway waits this long between an escalation's event and the decision of its fee, so it can be killed in between. 0 in production. */
  faultFeeDecisionDelayMs: number;
  /** ESCROW_FAULT_KILL_AFTER_RESERVATION=1, fault injection for tests: the process SIGKILLs itself right after a create's or an accept's reservation, before the milestone's event. */
  faultKillAfterReservation: boolean;
  /**
   * Fees and dispute windows for new milestones. ESCROW_FEES is JSON per currency, e.g.
   * {"USD":{"employer":{"percent":"2","minimum":"0.50"},"freelancer":{"percent":"10","minimum":"1.00"},"arbitration":"25.00"}};
   * default none. ESCROW_DISPUTE_RESPONSE_FREELANCER (default 4d), ESCROW_DISPUTE_RESPONSE_EMPLOYER
   * (14d), ESCROW_DISPUTE_NEGOTIATION (3d), ESCROW_CLEARING_PERIOD (0: payouts to freelancers
   * withdrawable at once) and ESCROW_ARBITRATION_FEE_DEADLINE (0: only the escalating party pays
   * the arbitration fee; else the other party's time to pay its own, or lose by default) are
   * durations: 500ms, 30s, 15m, 36h, 4d.
   */
  terms: TermsPolicy;
  /** How often due timers (dispute deadlines, auto-release) are looked for. Default 1000. */
  timerScanMs: number;
  /**
   * ESCROW_REPUTATION_MIN_PAID: what a project must have paid, in major units of its
   * currency, for its milestones and reviews to count toward reputation. Default 5.
   */
  reputationMinPaid: string;
}

type Env = Record<string, string | undefined>;

/**
 * The seed servers of a NATS_URL: a comma-separated list (a cluster's nodes) is several
 * servers, so the client can reach the cluster through any of them.
 */
/**
 * For the operators' tools: the configured DATABASE_URL, NATS_URL and secret, or, where they
 * are unset, those of the embedded engine running on ESCROW_DATA_DIR (its endpoints.json).
 */
export async function toolConfig(env: Env = process.env): Promise<Config> {
  const config = loadConfig(env);
  if (config.databaseUrl && config.natsUrl) return config;
  const { readEndpoints } = await import('./dev/endpoints.js');
  const { readFileSync } = await import('node:fs');
  const e = readEndpoints(config.dataDir);
  if (!e) return config;
  const secret = (() => {
    try {
      return readFileSync(e.secretFile, 'utf8').trim();
    } catch {
      return undefined;
    }
  })();
  return {
    ...config,
    databaseUrl: config.databaseUrl ?? e.databaseUrl,
    natsUrl: config.natsUrl ?? e.natsUrl,
    authJwtSecret: config.authJwtSecret ?? secret,
    namespace: env.ESCROW_NAMESPACE ? config.namespace : e.namespace,
  };
}

export function natsServers(url: string): string[] {
  return url
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
}

export interface NatsAuth {
  user: string | undefined;
  pass: string | undefined;
  token: string | undefined;
  credsFile: string | undefined;
}

/** NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_CREDS: at most one way, each whole. */
export function natsAuthFrom(env: Env = process.env): NatsAuth {
  const auth = {
    user: optional(env, 'NATS_USER'),
    pass: optional(env, 'NATS_PASSWORD'),
    token: optional(env, 'NATS_TOKEN'),
    credsFile: optional(env, 'NATS_CREDS'),
  };
  if ((auth.user === undefined) !== (auth.pass === undefined))
    throw new ConfigError(auth.user ? 'NATS_PASSWORD' : 'NATS_USER', 'NATS_USER and NATS_PASSWORD go together');
  if ([auth.user, auth.token, auth.credsFile].filter((x) => x !== undefined).length > 1) {
    throw new ConfigError('NATS_CREDS', 'give one of NATS_USER/NATS_PASSWORD, NATS_TOKEN and NATS_CREDS');
  }
  if (auth.credsFile !== undefined) readable('NATS_CREDS', auth.credsFile);
  return auth;
}

/**
 * The options every NATS connection of the engine and its tools starts from: the seed
 * servers and the credentials. Credentials never appear in logs.
 */
export function natsOptions(natsUrl: string, auth: NatsAuth): ConnectionOptions {
  const o: ConnectionOptions = { servers: natsServers(natsUrl) };
  if (auth.user !== undefined) Object.assign(o, { user: auth.user, pass: auth.pass });
  if (auth.token !== undefined) o.token = auth.token;
  if (auth.credsFile !== undefined) o.authenticator = credsAuthenticator(readFileSync(auth.credsFile));
  return o;
}

function readable(key: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export class ConfigError extends Error {
  constructor(key: string, problem: string) {
    super(`configuration ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}

function int(env: Env, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(key, `"${raw}" is not a whole number`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(key, `${value} is outside ${min}..${max}`);
  return value;
}

function bool(env: Env, key: string, fallback: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'on', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'off', 'no'].includes(raw)) return false;
  throw new ConfigError(key, `"${raw}" is not a boolean (on/off)`);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function duration(env: Env, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const m = /^([0-9]{1,9})(ms|s|m|h|d)$/.exec(raw);
  if (!m) throw new ConfigError(key, `"${raw}" is not a duration such as 500ms, 30s, 15m, 36h or 4d`);
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
  if (ms < 1 || ms > 365 * 86_400_000) throw new ConfigError(key, `${raw} is outside 1ms..365d`);
  return ms;
}

function fees(env: Env): TermsPolicy['fees'] {
  const key = 'ESCROW_FEES';
  const raw = optional(env, key);
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(key, 'is not JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(key, 'must be an object keyed by currency');
  const out: Record<string, { employer: FeeRule; freelancer: FeeRule; arbitration: string }> = {};
  for (const [currency, v] of Object.entries(parsed as Record<string, unknown>)) {
    const amount = (value: unknown, field: string): string => {
      if (value === undefined) return '0';
      try {
        return parseAmount(currency, typeof value === 'string' || typeof value === 'number' ? String(value) : '', `${currency}.${field}`, {
          allowZero: true,
        }).amount;
      } catch (err) {
        throw new ConfigError(key, err instanceof InvalidArgument ? err.message : String(err));
      }
    };
    const rule = (r: unknown, field: string): FeeRule => {
      const given = field_(r, 'percent');
      const percent = given === undefined ? '0' : typeof given === 'string' || typeof given === 'number' ? String(given) : '';
      if (!/^[0-9]{1,3}(\.[0-9]{1,4})?$/.test(percent) || new Decimal(percent).gt(100)) {
        throw new ConfigError(key, `${currency}.${field}.percent "${percent}" is not a percent 0..100`);
      }
      return { percent, minimum: amount(field_(r, 'minimum'), `${field}.minimum`) };
    };
    out[currency] = {
      employer: rule(field_(v, 'employer'), 'employer'),
      freelancer: rule(field_(v, 'freelancer'), 'freelancer'),
      arbitration: amount(field_(v, 'arbitration'), 'arbitration'),
    };
  }
  return out;
}

/** A field of a parsed JSON value that may be anything: undefined unless it is an object that has it. */
function field_(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

function decimal(env: Env, key: string, fallback: string): string {
  const raw = optional(env, key) ?? fallback;
  if (!/^(0|[1-9][0-9]{0,11})(\.[0-9]{1,3})?$/.test(raw)) throw new ConfigError(key, `"${raw}" is not a decimal amount such as 5 or 2.50`);
  return raw;
}

function projectAwards(env: Env): 'open' | 'marketplace' {
  const raw = optional(env, 'ESCROW_PROJECT_AWARDS') ?? 'open';
  if (raw !== 'open' && raw !== 'marketplace') throw new ConfigError('ESCROW_PROJECT_AWARDS', `"${raw}" is not open or marketplace`);
  return raw;
}

function optional(env: Env, key: string): string | undefined {
  const raw = env[key];
  return raw === undefined || raw === '' ? undefined : raw;
}

export function loadConfig(env: Env = process.env): Config {
  const namespace = optional(env, 'ESCROW_NAMESPACE') ?? 'escrow';
  if (!/^[a-z][a-z0-9_]{0,39}$/.test(namespace)) {
    throw new ConfigError('ESCROW_NAMESPACE', 'must be lower case letters, digits and _ (starting with a letter), at most 40');
  }
  const grpcAddress = optional(env, 'GRPC_ADDRESS') ?? '127.0.0.1:50051';
  if (!/^[^\s:]+:[0-9]{1,5}$/.test(grpcAddress) && !/^\[[0-9a-fA-F:]+\]:[0-9]{1,5}$/.test(grpcAddress)) {
    throw new ConfigError('GRPC_ADDRESS', `"${grpcAddress}" is not host:port`);
  }
  const logLevel = optional(env, 'LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `"${logLevel}" is not a pino level`);
  }
  const authJwtSecret = optional(env, 'AUTH_JWT_SECRET');
  const eventKey = optional(env, 'ESCROW_EVENT_KEY');
  if (eventKey !== undefined && eventKey.length < 16) throw new ConfigError('ESCROW_EVENT_KEY', 'must be at least 16 characters');
  if (authJwtSecret !== undefined && authJwtSecret.length < 16) {
    throw new ConfigError('AUTH_JWT_SECRET', 'must be at least 16 characters');
  }
  const auth = {
    jwksFile: optional(env, 'AUTH_JWKS_FILE'),
    jwksUrl: optional(env, 'AUTH_JWKS_URL'),
    issuer: optional(env, 'AUTH_ISSUER'),
    audience: optional(env, 'AUTH_AUDIENCE'),
  };
  if (auth.jwksFile !== undefined && auth.jwksUrl !== undefined)
    throw new ConfigError('AUTH_JWKS_URL', 'give AUTH_JWKS_FILE or AUTH_JWKS_URL, not both');
  if (auth.jwksFile !== undefined) readable('AUTH_JWKS_FILE', auth.jwksFile);
  if (auth.jwksUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(auth.jwksUrl))
    throw new ConfigError('AUTH_JWKS_URL', 'must be an http(s) URL');
  if (auth.jwksFile !== undefined || auth.jwksUrl !== undefined) {
    if (auth.issuer === undefined) throw new ConfigError('AUTH_ISSUER', 'required with a JWKS: the issuer every token must name');
    if (auth.audience === undefined) throw new ConfigError('AUTH_AUDIENCE', 'required with a JWKS: the audience every token must name');
    // Without the HS256 secret, events and page tokens need a key of their own.
    if (authJwtSecret === undefined && eventKey === undefined)
      throw new ConfigError(
        'ESCROW_EVENT_KEY',
        'required with a JWKS unless AUTH_JWT_SECRET is set: the key events and page tokens are signed with',
      );
  }
  const tlsCert = optional(env, 'GRPC_TLS_CERT');
  const tlsKey = optional(env, 'GRPC_TLS_KEY');
  const tlsClientCa = optional(env, 'GRPC_TLS_CLIENT_CA');
  if ((tlsCert === undefined) !== (tlsKey === undefined))
    throw new ConfigError(tlsCert ? 'GRPC_TLS_KEY' : 'GRPC_TLS_CERT', 'GRPC_TLS_CERT and GRPC_TLS_KEY go together');
  if (tlsClientCa !== undefined && tlsCert === undefined)
    throw new ConfigError('GRPC_TLS_CLIENT_CA', 'needs GRPC_TLS_CERT and GRPC_TLS_KEY');
  for (const [key, path] of [
    ['GRPC_TLS_CERT', tlsCert],
    ['GRPC_TLS_KEY', tlsKey],
    ['GRPC_TLS_CLIENT_CA', tlsClientCa],
  ] as const)
    if (path !== undefined) readable(key, path);
  return {
    databaseUrl: optional(env, 'DATABASE_URL'),
    natsUrl: optional(env, 'NATS_URL'),
    authJwtSecret,
    eventKey,
    auth,
    grpcTls: tlsCert !== undefined && tlsKey !== undefined ? { cert: tlsCert, key: tlsKey, clientCa: tlsClientCa } : null,
    natsAuth: natsAuthFrom(env),
    metricsAddress: optional(env, 'METRICS_ADDRESS'),
    grpcAddress,
    namespace,
    logLevel,
    dataDir: optional(env, 'ESCROW_DATA_DIR') ?? './.data',
    mailboxMax: int(env, 'ESCROW_MAILBOX_MAX', 64, 1, 100_000),
    actorsMax: int(env, 'ESCROW_ACTORS_MAX', 10_000, 1, 10_000_000),
    actorIdleMs: int(env, 'ESCROW_ACTOR_IDLE_MS', 60_000, 10, 86_400_000),
    fundingWaitMs: int(env, 'ESCROW_FUNDING_WAIT_MS', 5_000, 0, 600_000),
    reservationTtlMs: int(env, 'ESCROW_RESERVATION_TTL_MS', 30_000, 1_000, 86_400_000),
    projectAwards: projectAwards(env),
    ledgerWaitMs: int(env, 'ESCROW_LEDGER_WAIT_MS', 5_000, 0, 600_000),
    ledgerBatchMax: int(env, 'ESCROW_LEDGER_BATCH_MAX', 256, 1, 10_000),
    ledgerStandbyPollMs: int(env, 'ESCROW_LEDGER_STANDBY_POLL_MS', 1_000, 10, 60_000),
    duplicateWindowMs: int(env, 'ESCROW_DUPLICATE_WINDOW_MS', 120_000, 1_000, 86_400_000),
    streamReplicas: int(env, 'ESCROW_STREAM_REPLICAS', 1, 1, 5),
    logRetryMs: int(env, 'ESCROW_LOG_RETRY_MS', 2_000, 0, 60_000),
    streamMaxBytes: int(env, 'ESCROW_STREAM_MAX_BYTES', 10 * 1024 ** 3, 4_096, Number.MAX_SAFE_INTEGER),
    streamMaxMessageBytes: int(env, 'ESCROW_STREAM_MAX_MESSAGE_BYTES', 65_536, 8_192, 8 * 1024 * 1024),
    unsafeReplicatedStream: bool(env, 'ESCROW_UNSAFE_REPLICATED_STREAM', false),
    grpcMaxMessageBytes: int(env, 'ESCROW_GRPC_MAX_MESSAGE_BYTES', 65_536, 1_024, 16_777_216),
    inflightMax: int(env, 'ESCROW_INFLIGHT_MAX', 20_000, 1, 1_000_000),
    callerLimits: {
      reservedForRoles: int(
        env,
        'ESCROW_INFLIGHT_RESERVED',
        Math.floor(int(env, 'ESCROW_INFLIGHT_MAX', 20_000, 1, 1_000_000) / 10),
        0,
        1_000_000,
      ),
      perCallerInflightMax: int(env, 'ESCROW_CALLER_INFLIGHT_MAX', 512, 1, 1_000_000),
      writesPerS: int(env, 'ESCROW_CALLER_WRITES_PER_S', 2_000, 1, 1_000_000),
      readsPerS: int(env, 'ESCROW_CALLER_READS_PER_S', 2_000, 1, 1_000_000),
      watchesPerCallerMax: int(env, 'ESCROW_WATCH_PER_CALLER_MAX', 32, 1, 100_000),
      watchMaxAgeMs: int(env, 'ESCROW_WATCH_MAX_AGE_MS', 3_600_000, 100, 86_400_000),
    },
    grpcConnections: {
      max: int(env, 'ESCROW_GRPC_CONNECTIONS_MAX', 1_000, 1, 1_000_000),
      idleMs: int(env, 'ESCROW_GRPC_IDLE_MS', 300_000, 100, 86_400_000),
      maxAgeMs: int(env, 'ESCROW_GRPC_MAX_AGE_MS', 1_800_000, 1_000, 604_800_000),
      keepaliveMs: int(env, 'ESCROW_GRPC_KEEPALIVE_MS', 60_000, 1_000, 3_600_000),
    },
    sourceMaps: bool(env, 'ESCROW_SOURCE_MAPS', false),
    faultPublishDelayMs: int(env, 'ESCROW_FAULT_PUBLISH_DELAY_MS', 0, 0, 60_000),
    faultFeeDecisionDelayMs: int(env, 'ESCROW_FAULT_FEE_DECISION_DELAY_MS', 0, 0, 60_000),
    faultKillAfterReservation: env.ESCROW_FAULT_KILL_AFTER_RESERVATION === '1',
    terms: {
      fees: fees(env),
      responseMsFreelancer: duration(env, 'ESCROW_DISPUTE_RESPONSE_FREELANCER', DEFAULT_POLICY.responseMsFreelancer),
      responseMsEmployer: duration(env, 'ESCROW_DISPUTE_RESPONSE_EMPLOYER', DEFAULT_POLICY.responseMsEmployer),
      negotiationMs: duration(env, 'ESCROW_DISPUTE_NEGOTIATION', DEFAULT_POLICY.negotiationMs),
      clearingMs: duration(env, 'ESCROW_CLEARING_PERIOD', 0),
      arbitrationFeeDeadlineMs: duration(env, 'ESCROW_ARBITRATION_FEE_DEADLINE', 0),
    },
    timerScanMs: int(env, 'ESCROW_TIMER_SCAN_MS', 1_000, 10, 3_600_000),
    reputationMinPaid: decimal(env, 'ESCROW_REPUTATION_MIN_PAID', '5'),
  };
}
