import { SignJWT } from 'jose';

/** Mints an HS256 bearer token, for development, tests and the load tools. */
export async function mintToken(secret: string, sub: string, opts: { roles?: string[]; expiresIn?: string } = {}): Promise<string> {
  return new SignJWT({ roles: opts.roles ?? [] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? '12h')
    .sign(new TextEncoder().encode(secret));
}
