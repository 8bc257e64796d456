import * as grpc from '@grpc/grpc-js';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import { SYSTEM_CALLER, type Caller } from '../../actors/decision.js';
import { Unauthenticated } from '../errors.js';
import { USER_ID_PATTERN } from './validate.js';

const ROLES = new Set(['arbiter', 'payments']);
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

/**
 * Authenticates a call from `authorization: Bearer <JWT>` (HS256, AUTH_JWT_SECRET).
 * `sub` is the acting user; `roles` may hold "arbiter" and "payments".
 */
/** Verified tokens remembered (until they expire), so a client's repeat calls skip the HMAC. */
const VERIFIED_MAX = 10_000;

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
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new Unauthenticated('TOKEN_EXPIRED', 'the token has expired');
      throw new Unauthenticated('TOKEN_INVALID', 'the token is not valid');
    }
    // "system" is the engine's own caller id (saga steps); no token may act as it.
    if (typeof payload.sub !== 'string' || !USER_ID_PATTERN.test(payload.sub) || payload.sub === SYSTEM_CALLER) {
      throw new Unauthenticated('TOKEN_SUBJECT_INVALID', 'the token has no valid sub');
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string' && ROLES.has(r)) : [];
    const caller = { id: payload.sub, roles };
    // Only tokens with an expiry are remembered, and never past it.
    if (typeof payload.exp === 'number') {
      if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { caller, expiresAt: payload.exp * 1000 });
    }
    return caller;
  }
}
