import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { InvalidArgument } from '../errors.js';

/**
 * Page tokens are opaque to clients and authenticated by the gateway: the position in the
 * list plus the scope it was issued for (the caller and the query), under an HMAC with a key
 * derived from the deployment's secret. A token that was altered, made up, or issued for
 * another caller or another query is INVALID_ARGUMENT `PAGE_TOKEN_INVALID`, and nothing of it
 * reaches the database unchecked.
 */
export class PageTokens {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('escrow-page-token'), Buffer.alloc(0), 32));
  }

  issue(scope: string, position: Record<string, string>): string {
    const body = Buffer.from(JSON.stringify(position)).toString('base64url');
    return `${body}.${this.mac(scope, body)}`;
  }

  /** The position of a token issued for `scope`; null for none (''); `check` validates each field. */
  open(scope: string, token: unknown, check: (position: Record<string, unknown>) => boolean): Record<string, string> | null {
    if (token === undefined || token === null || token === '') return null;
    const invalid = () =>
      new InvalidArgument('PAGE_TOKEN_INVALID', 'page_token is not one this service issued for this query', { field: 'page_token' });
    if (typeof token !== 'string' || token.length > 512) throw invalid();
    const [body, mac, extra] = token.split('.');
    if (!body || !mac || extra !== undefined) throw invalid();
    const expected = Buffer.from(this.mac(scope, body));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
    let position: unknown;
    try {
      position = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw invalid();
    }
    if (!position || typeof position !== 'object' || !check(position as Record<string, unknown>)) throw invalid();
    return position as Record<string, string>;
  }

  private mac(scope: string, body: string): string {
    return createHmac('sha256', this.key).update(scope).update('\n').update(body).digest('base64url');
  }
}

/** A stream sequence as PostgreSQL's bigint holds it. */
export const isSeq = (v: unknown): v is string =>
  typeof v === 'string' && /^[1-9][0-9]{0,18}$/.test(v) && BigInt(v) <= 9_223_372_036_854_775_807n;
/** A timestamp PostgreSQL's timestamptz holds. */
export const isTime = (v: unknown): v is string =>
  typeof v === 'string' && v.length <= 40 && Number.isFinite(Date.parse(v)) && Math.abs(new Date(v).getFullYear()) < 10_000;
export const isUuid = (v: unknown): v is string =>
  typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v);
