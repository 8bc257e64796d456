import * as grpc from '@grpc/grpc-js';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  errors as joseErrors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from 'jose';
import { isReservedUserId, type Caller } from '../../actors/decision.js';
import { Unauthenticated, Unavailable } from '../errors.js';
import { USER_ID_PATTERN } from './validate.js';

const ROLES = new Set(['arbiter', 'payments', 'marketplace', 'support']);
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

/** Verified tokens remembered (until they expire), so a client's repeat calls skip the HMAC. */
const VERIFIED_MAX = 10_000;
/** A token must expire, and at most this far ahead: a leaked token is not a key for ever. */
export const TOKEN_LIFETIME_MAX_S = 24 * 3600;
/** How far ahead of the gateway's clock an issuer's may run (iat, and the lifetime bound). */
const CLOCK_SKEW_S = 60;

/** Asymmetric algorithms a JWKS key may sign with (jose names; Ed25519 is EdDSA's newer name). */
const JWKS_ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256', 'RS256'];
/** A token verified against a JWKS is remembered at most this long: a key taken out of the set stops working within it. */
const JWKS_REMEMBER_MS = 60_000;
/** How often a JWKS file is looked at for changes (a rotation). */
const JWKS_FILE_CHECK_MS = 2_000;

export interface AuthOptions {
  /** HS256 secret (AUTH_JWT_SECRET): development, and services that share it. */
  secret?: string | undefined;
  /** A JWKS file (AUTH_JWKS_FILE) or URL (AUTH_JWKS_URL), for asymmetric tokens. */
  jwksFile?: string | undefined;
  jwksUrl?: string | undefined;
  /** Checked on every token when set (AUTH_ISSUER, AUTH_AUDIENCE); required with a JWKS (src/config.ts). */
  issuer?: string | undefined;
  audience?: string | undefined;
}

type KeyLookup = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | KeyObject>;

/** A JWKS file, re-read when its modification time changes. */
class JwksFile {
  private keys: ReturnType<typeof createLocalJWKSet>;
  private mtimeMs: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly path: string,
    private readonly onChange: () => void,
  ) {
    this.keys = createLocalJWKSet(JSON.parse(readFileSync(path, 'utf8')) as JSONWebKeySet);
    this.mtimeMs = statSync(path).mtimeMs;
    this.timer = setInterval(() => this.check(), JWKS_FILE_CHECK_MS);
    this.timer.unref();
  }

  private check(): void {
    try {
      const mtimeMs = statSync(this.path).mtimeMs;
      if (mtimeMs === this.mtimeMs) return;
      this.keys = createLocalJWKSet(JSON.parse(readFileSync(this.path, 'utf8')) as JSONWebKeySet);
      this.mtimeMs = mtimeMs;
      this.onChange();
    } catch {
      // A file being rewritten, or broken: the keys read last stay until a good one is there.
    }
  }

  readonly lookup: KeyLookup = (header, token) => this.keys(header, token);

  close(): void {
    clearInterval(this.timer);
  }
}

/**
 * Authenticates a call from `authorization: Bearer <JWT>`: HS256 with AUTH_JWT_SECRET, and/or
 * an asymmetric token verified against a JWKS, with the issuer and audience checked when set.
 * `sub` is the acting user; `roles` may hold "arbiter", "payments", "marketplace" and "support". `exp` is required and at
 * most TOKEN_LIFETIME_MAX_S ahead; an `iat` in the future is refused.
 */
export class Authenticator {
  private readonly secret: KeyObject | null;
  private readonly jwks: KeyLookup | null;
  private readonly file: JwksFile | null = null;
  private readonly algorithms: string[];
  private readonly verified = new Map<string, { caller: Caller; expiresAt: number }>();

  constructor(private readonly o: AuthOptions) {
    this.secret = o.secret ? createSecretKey(Buffer.from(o.secret, 'utf8')) : null;
    if (o.jwksFile) {
      this.file = new JwksFile(o.jwksFile, () => this.verified.clear());
      this.jwks = this.file.lookup;
    } else if (o.jwksUrl) {
      // Fetched again at most a minute after the last fetch, so a key withdrawn at the identity provider stops
      // verifying within about two minutes (this cache, then the remembered tokens).
      this.jwks = createRemoteJWKSet(new URL(o.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 60_000, timeoutDuration: 5_000 });
    } else {
      this.jwks = null;
    }
    this.algorithms = [...(this.secret ? ['HS256'] : []), ...(this.jwks ? JWKS_ALGORITHMS : [])];
  }

  close(): void {
    this.file?.close();
  }

  async authenticate(metadata: grpc.Metadata): Promise<Caller> {
    const values = metadata.get('authorization');
    if (values.length === 0) throw new Unauthenticated('TOKEN_MISSING', 'authorization metadata with a Bearer token is required');
    const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (!match) throw new Unauthenticated('TOKEN_MALFORMED', 'authorization must be "Bearer <JWT>"');
    const token = match[1] ?? '';
    const known = this.verified.get(token);
    if (known && known.expiresAt > Date.now()) return known.caller;
    let payload;
    try {
      const key: KeyLookup = async (header, input) => {
        if (header.alg === 'HS256' && this.secret) return this.secret;
        if (this.jwks) return this.jwks(header, input);
        if (this.secret) return this.secret;
        throw new Error('no key is configured');
      };
      ({ payload } = await jwtVerify(token, key, {
        algorithms: this.algorithms,
        requiredClaims: ['exp'],
        ...(this.o.issuer !== undefined ? { issuer: this.o.issuer } : {}),
        ...(this.o.audience !== undefined ? { audience: this.o.audience } : {}),
      }));
    } catch (err) {
      throw tokenError(err, this.o.jwksUrl !== undefined);
    }
    const now = Date.now() / 1000;
    const exp = payload.exp ?? 0; // required above (requiredClaims)
    if (exp > now + TOKEN_LIFETIME_MAX_S + CLOCK_SKEW_S) {
      throw new Unauthenticated('TOKEN_LIFETIME_TOO_LONG', `the token's exp is more than ${TOKEN_LIFETIME_MAX_S / 3600} h ahead`);
    }
    if (payload.iat !== undefined && payload.iat > now + CLOCK_SKEW_S)
      throw new Unauthenticated('TOKEN_ISSUED_IN_FUTURE', 'the token was issued in the future');
    // Reserved ids ("system", the engine's own caller for saga steps, and the ledger's account kinds): no token may act as one.
    if (typeof payload.sub !== 'string' || !USER_ID_PATTERN.test(payload.sub) || isReservedUserId(payload.sub)) {
      throw new Unauthenticated('TOKEN_SUBJECT_INVALID', 'the token has no valid sub');
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string' && ROLES.has(r)) : [];
    const caller = { id: payload.sub, roles };
    // Remembered until it expires, never past it; a JWKS token at most a minute (its key may be withdrawn).
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value ?? '');
    const byJwks = this.jwks !== null && !(this.secret && decodeProtectedHeader(token).alg === 'HS256');
    this.verified.set(token, { caller, expiresAt: byJwks ? Math.min(exp * 1000, Date.now() + JWKS_REMEMBER_MS) : exp * 1000 });
    return caller;
  }
}

/** What a failed verification tells the caller: a stable reason each; an unreachable JWKS is UNAVAILABLE (retry), not the caller's fault. */
function tokenError(err: unknown, remote: boolean): Error {
  if (err instanceof joseErrors.JWTExpired) return new Unauthenticated('TOKEN_EXPIRED', 'the token has expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'exp') return new Unauthenticated('TOKEN_EXPIRY_REQUIRED', 'the token must have an exp claim');
    if (err.claim === 'iss') return new Unauthenticated('TOKEN_ISSUER_INVALID', 'the token is not from the expected issuer');
    if (err.claim === 'aud') return new Unauthenticated('TOKEN_AUDIENCE_INVALID', 'the token is not meant for this service');
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return new Unauthenticated('TOKEN_KEY_UNKNOWN', 'no key of the key set verifies this token (unknown or withdrawn key id)');
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return new Unauthenticated('TOKEN_ALGORITHM_REFUSED', 'the token is signed with an algorithm this service does not accept');
  // A fetch of the key set that failed (timeout, refused connection, not a JWKS).
  if (
    remote &&
    (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid || !(err instanceof joseErrors.JOSEError))
  ) {
    return new Unavailable('JWKS_UNAVAILABLE', 'the key set cannot be fetched now; retry', err);
  }
  return new Unauthenticated('TOKEN_INVALID', 'the token is not valid');
}
