import * as grpc from '@grpc/grpc-js';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import { isReservedUserId, type Caller } from '../../actors/decision.js';
import { Unauthenticated } from '../errors.js';
import { USER_ID_PATTERN } from './validate.js';

const ROLES = new Set(['arbiter', 'payments']);
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

/** Verified tokens remembered (until they expire), so a client's repeat calls skip the HMAC. */
const VERIFIED_MAX = 10_000;
/** A token must expire, and at most this far ahead: a leaked token is not a key for ever. */
export const TOKEN_LIFETIME_MAX_S = 24 * 3600;
/** How far ahead of the gateway's clock an issuer's may run (iat, and the lifetime bound). */
const CLOCK_SKEW_S = 60;

/**
 * Authenticates a call from `authorization: Bearer <JWT>` (HS256, AUTH_JWT_SECRET).
 * `sub` is the acting user; `roles` may hold "arbiter" and "payments". `exp` is required and at
 * most TOKEN_LIFETIME_MAX_S ahead; an `iat` in the future is refused.
 */
export class Authenticator {
  private readonly key: KeyObject;
  private readonly verified = new Map<string, { caller: Caller; expiresAt: number }>();

  constructor(secret: string) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  async authenticate(metadata: grpc.Metadata): Promise<Caller> {
    const values = metadata.get('authorization');
    if (values.length === 0) throw new Unauthenticated('TOKEN_MISSING', 'authorization metadata with a Bearer token is required');
    const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (!match) throw new Unauthenticated('TOKEN_MALFORMED', 'authorization must be "Bearer <JWT>"');
    const token = match[1]!;
    const known = this.verified.get(token);
    if (known && known.expiresAt > Date.now()) return known.caller;
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], requiredClaims: ['exp'] }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new Unauthenticated('TOKEN_EXPIRED', 'the token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'exp') throw new Unauthenticated('TOKEN_EXPIRY_REQUIRED', 'the token must have an exp claim');
      throw new Unauthenticated('TOKEN_INVALID', 'the token is not valid');
    }
    const now = Date.now() / 1000;
    const exp = payload.exp!;
    if (exp > now + TOKEN_LIFETIME_MAX_S + CLOCK_SKEW_S) {
      throw new Unauthenticated('TOKEN_LIFETIME_TOO_LONG', `the token's exp is more than ${TOKEN_LIFETIME_MAX_S / 3600} h ahead`);
    }
    if (payload.iat !== undefined && payload.iat > now + CLOCK_SKEW_S) throw new Unauthenticated('TOKEN_ISSUED_IN_FUTURE', 'the token was issued in the future');
    // Reserved ids ("system", the engine's own caller for saga steps, and the ledger's account kinds): no token may act as one.
    if (typeof payload.sub !== 'string' || !USER_ID_PATTERN.test(payload.sub) || isReservedUserId(payload.sub)) {
      throw new Unauthenticated('TOKEN_SUBJECT_INVALID', 'the token has no valid sub');
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string' && ROLES.has(r)) : [];
    const caller = { id: payload.sub, roles };
    // Remembered until it expires, never past it.
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { caller, expiresAt: exp * 1000 });
    return caller;
  }
}
