import * as grpc from '@grpc/grpc-js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { freePort } from '../src/dev/embedded.js';
import { loadEscrowPackage } from '../src/gateway/proto.js';
import { EscrowClient, failure } from './helpers/client.js';
import { eventually, services, startEngine, type TestEngine } from './helpers/engine.js';

const ISSUER = 'https://idp.example.test/';
const AUDIENCE = 'escrow-engine';
const dir = mkdtempSync(join(tmpdir(), 'escrow-sec-'));

interface Signer {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
}
async function signer(kid: string, alg: 'EdDSA' | 'RS256' | 'ES256'): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}
function token(s: Signer, o: { sub?: string; roles?: string[]; iss?: string; aud?: string; exp?: string | number } = {}): Promise<string> {
  return new SignJWT({ roles: o.roles ?? [] })
    .setProtectedHeader({ alg: s.alg, kid: s.kid, typ: 'JWT' })
    .setSubject(o.sub ?? 'emp-sec')
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(o.exp ?? '10m')
    .sign(s.privateKey);
}
const jwks = (...signers: Signer[]) => JSON.stringify({ keys: signers.map((s) => s.jwk) });
/** The env of an engine that takes only tokens of the identity provider (no HS256 secret). */
const jwksEnv = (extra: Record<string, string>) => ({
  AUTH_JWT_SECRET: '',
  AUTH_ISSUER: ISSUER,
  AUTH_AUDIENCE: AUDIENCE,
  ESCROW_EVENT_KEY: 'event-key-0123456789abcdef',
  ...extra,
});
const balance = (c: EscrowClient, t: string | null) =>
  c.callWithToken('AccountService', 'GetBalance', { user_id: 'emp-sec', currency_code: 'USD' }, t);

describe('tokens from a JWKS file: issuer, audience, key ids, rotation', () => {
  let t: TestEngine;
  let k1: Signer;
  let k2: Signer;
  const file = join(dir, 'jwks.json');

  beforeAll(async () => {
    [k1, k2] = await Promise.all([signer('k1', 'EdDSA'), signer('k2', 'ES256')]);
    writeFileSync(file, jwks(k1));
    t = await startEngine({ env: jwksEnv({ AUTH_JWKS_FILE: file }) });
  });
  afterAll(() => t?.stop());

  it('a token of the key set works; money moves through it end to end', async () => {
    const r = await t.client.callWithToken(
      'AccountService',
      'Deposit',
      { user_id: 'emp-sec', amount: { currency_code: 'USD', amount: '5.00' }, external_reference: 'sec-dep-1' },
      await token(k1, { sub: 'payments-svc', roles: ['payments'] }),
    );
    expect(r.status).toBe('APPLIED');
    expect((await balance(t.client, await token(k1))).available.amount).toBe('5.00');
  });

  it('refuses, each with its own reason: wrong issuer, wrong audience, unknown key id, expired, HS256, none', async () => {
    const refused = async (tok: string) => {
      const e = await failure(balance(t.client, tok));
      expect(e.code).toBe(grpc.status.UNAUTHENTICATED);
      return e.reason;
    };
    expect(await refused(await token(k1, { iss: 'https://evil.example.test/' }))).toBe('TOKEN_ISSUER_INVALID');
    expect(await refused(await token(k1, { aud: 'another-service' }))).toBe('TOKEN_AUDIENCE_INVALID');
    expect(await refused(await token(k2))).toBe('TOKEN_KEY_UNKNOWN');
    expect(await refused(await token(k1, { exp: Math.floor(Date.now() / 1000) - 120 }))).toBe('TOKEN_EXPIRED');
    const hs = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setSubject('emp-sec')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode('guessed-secret-0123456789'));
    expect(await refused(hs)).toBe('TOKEN_ALGORITHM_REFUSED');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'emp-sec', iss: ISSUER, aud: AUDIENCE, exp: Date.now() / 1000 + 600 })).toString('base64url')}.`;
    expect(await refused(none)).toBe('TOKEN_ALGORITHM_REFUSED');
  });

  it('a key taken out of the file stops working, and a key put in starts, without a restart', async () => {
    const old = await token(k1);
    expect((await balance(t.client, old)).available.amount).toBe('5.00');
    writeFileSync(file, jwks(k2));
    // Even the token verified a moment ago (remembered) is refused once the file is re-read.
    await eventually(async () => expect((await failure(balance(t.client, old))).reason).toBe('TOKEN_KEY_UNKNOWN'), 10_000);
    expect((await balance(t.client, await token(k2))).available.amount).toBe('5.00');
  });
});

describe('tokens from a JWKS URL', () => {
  let t: TestEngine;
  let k: Signer;
  let http: Server | null = null;
  let port = 0;
  const serve = () =>
    new Promise<void>((ok) => {
      http = createServer((_, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks(k)));
      http.listen(port, '127.0.0.1', () => ok());
    });

  beforeAll(async () => {
    k = await signer('rsa-1', 'RS256');
    port = await freePort();
    // The identity provider is down when the engine starts.
    t = await startEngine({ env: jwksEnv({ AUTH_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` }) });
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise((ok) => (http ? http.close(ok) : ok(null)));
  });

  it('while the key set cannot be fetched: UNAVAILABLE JWKS_UNAVAILABLE (retry), not the caller refused; then it works', async () => {
    const tok = await token(k);
    const e = await failure(balance(t.client, tok));
    expect(e.code).toBe(grpc.status.UNAVAILABLE);
    expect(e.reason).toBe('JWKS_UNAVAILABLE');
    await serve();
    expect((await balance(t.client, tok)).available.amount).toBe('0.00');
    expect((await failure(balance(t.client, await token(k, { aud: 'x' })))).reason).toBe('TOKEN_AUDIENCE_INVALID');
  });
});

/** A CA, a server certificate for 127.0.0.1, a client certificate it signed, and a client certificate of a stranger. */
function certificates() {
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=test-ca', '-keyout', p('ca.key'), '-out', p('ca.pem'));
  writeFileSync(p('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, ca] of [
    ['server', 'ca'],
    ['client', 'ca'],
    ['stranger', null],
  ] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`));
    if (ca)
      ssl(
        'x509',
        '-req',
        '-in',
        p(`${name}.csr`),
        '-CA',
        p('ca.pem'),
        '-CAkey',
        p('ca.key'),
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        p('san.cnf'),
        '-out',
        p(`${name}.pem`),
      );
    else ssl('x509', '-req', '-in', p(`${name}.csr`), '-signkey', p(`${name}.key`), '-days', '2', '-out', p(`${name}.pem`));
  }
  const read = (name: string) => readFileSync(p(name));
  return {
    paths: { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') },
    ca: read('ca.pem'),
    client: { cert: read('client.pem'), key: read('client.key') },
    stranger: { cert: read('stranger.pem'), key: read('stranger.key') },
  };
}

/** GetBalance over a channel of the given credentials, with an HS256 test token. */
async function callOver(
  address: string,
  credentials: grpc.ChannelCredentials,
  tokenOf: EscrowClient,
): Promise<{ code: number; reason?: string }> {
  const pkg = loadEscrowPackage();
  const client = new pkg.AccountService(address, credentials);
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${await tokenOf.token('emp-tls')}`);
  try {
    return await new Promise((ok) =>
      (client as unknown as Record<string, (...a: unknown[]) => void>).GetBalance!.call(
        client,
        { user_id: 'emp-tls', currency_code: 'USD' },
        md,
        { deadline: Date.now() + 5_000 },
        (err: grpc.ServiceError | null) => ok({ code: err ? err.code : 0 }),
      ),
    );
  } finally {
    client.close();
  }
}

describe('TLS and mTLS on the gRPC port', () => {
  const certs = certificates();
  let tls: TestEngine;
  let mtls: TestEngine;
  beforeAll(async () => {
    tls = await startEngine({ worker: false, env: { GRPC_TLS_CERT: certs.paths.cert, GRPC_TLS_KEY: certs.paths.key } });
    mtls = await startEngine({
      worker: false,
      env: { GRPC_TLS_CERT: certs.paths.cert, GRPC_TLS_KEY: certs.paths.key, GRPC_TLS_CLIENT_CA: certs.paths.ca },
    });
  });
  afterAll(async () => {
    await tls?.stop();
    await mtls?.stop();
  });

  it('TLS: a client that trusts the CA is served; a plaintext client is not', async () => {
    expect((await callOver(tls.config.grpcAddress, grpc.credentials.createSsl(certs.ca), tls.client)).code).toBe(0);
    expect((await callOver(tls.config.grpcAddress, grpc.credentials.createInsecure(), tls.client)).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('mTLS: a client certificate of the CA is served; no certificate, or a stranger one, is refused', async () => {
    expect(
      (await callOver(mtls.config.grpcAddress, grpc.credentials.createSsl(certs.ca, certs.client.key, certs.client.cert), mtls.client))
        .code,
    ).toBe(0);
    expect((await callOver(mtls.config.grpcAddress, grpc.credentials.createSsl(certs.ca), mtls.client)).code).toBe(grpc.status.UNAVAILABLE);
    expect(
      (await callOver(mtls.config.grpcAddress, grpc.credentials.createSsl(certs.ca, certs.stranger.key, certs.stranger.cert), mtls.client))
        .code,
    ).toBe(grpc.status.UNAVAILABLE);
  });
});

describe('NATS credentials of the engine', () => {
  let server: ChildProcess;
  let url = '';
  beforeAll(async () => {
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
    server = spawn(
      bin,
      ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', mkdtempSync(join(dir, 'nats-')), '--user', 'escrow', '--pass', 'nats-pass-123'],
      { stdio: 'ignore' },
    );
    await eventually(async () => {
      const { connect } = await import('@nats-io/transport-node');
      await (await connect({ servers: url, user: 'escrow', pass: 'nats-pass-123' })).close();
    }, 10_000);
  });
  afterAll(() => server?.kill('SIGTERM'));

  it('connects with NATS_USER and NATS_PASSWORD, and a wrong password stops the start naming NATS', async () => {
    const t = await startEngine({ env: { NATS_URL: url, NATS_USER: 'escrow', NATS_PASSWORD: 'nats-pass-123' } });
    try {
      const r = await t.client.a(
        'Deposit',
        { id: 'payments-svc', roles: ['payments'] },
        { user_id: 'emp-nats', amount: { currency_code: 'USD', amount: '1.00' }, external_reference: 'nats-dep-1' },
      );
      expect(r.status).toBe('APPLIED');
    } finally {
      await t.stop();
    }
    await expect(startEngine({ env: { NATS_URL: url, NATS_USER: 'escrow', NATS_PASSWORD: 'wrong' } })).rejects.toThrow(/NATS/);
  });
});

describe('the configuration of authentication, TLS and NATS credentials', () => {
  const base = { DATABASE_URL: services().databaseUrl, NATS_URL: services().natsUrl };
  const problem = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
      return null;
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
  };
  it('names the key that is missing or wrong', () => {
    const file = join(dir, 'empty-jwks.json');
    writeFileSync(file, '{"keys":[]}');
    expect(problem({ AUTH_JWKS_FILE: file, AUTH_AUDIENCE: 'a', ESCROW_EVENT_KEY: 'k'.repeat(16) })).toMatch(/AUTH_ISSUER/);
    expect(problem({ AUTH_JWKS_FILE: file, AUTH_ISSUER: 'i', ESCROW_EVENT_KEY: 'k'.repeat(16) })).toMatch(/AUTH_AUDIENCE/);
    expect(problem({ AUTH_JWKS_FILE: file, AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a' })).toMatch(/ESCROW_EVENT_KEY/);
    expect(
      problem({ AUTH_JWKS_FILE: join(dir, 'missing.json'), AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a', ESCROW_EVENT_KEY: 'k'.repeat(16) }),
    ).toMatch(/AUTH_JWKS_FILE: cannot read/);
    expect(problem({ AUTH_JWKS_URL: 'ftp://x', AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a', ESCROW_EVENT_KEY: 'k'.repeat(16) })).toMatch(
      /AUTH_JWKS_URL/,
    );
    expect(problem({ GRPC_TLS_CERT: file })).toMatch(/GRPC_TLS_KEY/);
    expect(problem({ GRPC_TLS_CLIENT_CA: file })).toMatch(/GRPC_TLS_CLIENT_CA/);
    expect(problem({ NATS_USER: 'u' })).toMatch(/NATS_PASSWORD/);
    expect(problem({ NATS_TOKEN: 't', NATS_CREDS: file })).toMatch(/one of/);
    expect(problem({ NATS_CREDS: join(dir, 'missing.creds') })).toMatch(/NATS_CREDS: cannot read/);
    expect(problem({ AUTH_JWKS_FILE: file, AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a', ESCROW_EVENT_KEY: 'k'.repeat(16) })).toBeNull();
  });
});
