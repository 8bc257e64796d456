import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** The header that carries an event's signature: `v1=<base64url HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'Escrow-Signature';

/**
 * Events are signed by the engine: an HMAC-SHA256 over the subject and the body, with a key
 * derived (HKDF) from the deployment's secret (ESCROW_EVENT_KEY, by default AUTH_JWT_SECRET)
 * and the namespace. The ledger moves anything it cannot verify aside instead of posting it,
 * and gateways never load a state or an outcome they cannot verify, so a process that can
 * publish on the stream's subjects (NATS permissions are a deployment matter) still cannot
 * create, move or wedge money.
 */
export class EventSigner {
  private readonly key: Buffer;

  constructor(secret: string, namespace: string) {
    this.key = Buffer.from(
      hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('escrow-event-signing'), Buffer.from(namespace), 32),
    );
  }

  sign(subject: string, body: Uint8Array): string {
    return `v1=${this.mac(subject, body).toString('base64url')}`;
  }

  verify(subject: string, body: Uint8Array, signature: string | undefined | null): boolean {
    if (!signature || !signature.startsWith('v1=')) return false;
    const given = Buffer.from(signature.slice(3), 'base64url');
    const expected = this.mac(subject, body);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private mac(subject: string, body: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(subject).update('\n').update(body).digest();
  }
}
