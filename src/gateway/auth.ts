import * as grpc from '@grpc/grpc-js';
import { jwtVerify, errors as joseErrors } from 'jose';
import type { Caller } from '../../actors/decision.js';
import { Unauthenticated } from '../errors.js';
import { USER_ID_PATTERN } from './validate.js';

const ROLES = new Set(['arbiter', 'payments']);
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

/**
 * Authenticates a call from `authorization: Bearer <JWT>` (HS256, AUTH_JWT_SECRET).
 * `sub` is the acting user; `roles` may hold "arbiter" and "payments".
 */
export class Authenticator {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async authenticate(metadata: grpc.Metadata): Promise<Caller> {
    const values = metadata.get('authorization');
    if (values.length === 0) throw new Unauthenticated('TOKEN_MISSING', 'authorization metadata with a Bearer token is required');
    const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (!match) throw new Unauthenticated('TOKEN_MALFORMED', 'authorization must be "Bearer <JWT>"');
    let payload;
    try {
      ({ payload } = await jwtVerify(match[1]!, this.key, { algorithms: ['HS256'] }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new Unauthenticated('TOKEN_EXPIRED', 'the token has expired');
      throw new Unauthenticated('TOKEN_INVALID', 'the token is not valid');
    }
    if (typeof payload.sub !== 'string' || !USER_ID_PATTERN.test(payload.sub)) {
      throw new Unauthenticated('TOKEN_SUBJECT_INVALID', 'the token has no valid sub');
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string' && ROLES.has(r)) : [];
    return { id: payload.sub, roles };
  }
}
