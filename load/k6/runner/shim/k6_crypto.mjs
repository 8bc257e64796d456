// k6/crypto: hmac (the subset the scripts use).
import { createHmac } from 'node:crypto';

const ENCODINGS = { hex: 'hex', base64: 'base64', base64url: 'base64url', base64rawurl: 'base64url', base64raw: 'base64' };
export function hmac(algorithm, secret, data, outputEncoding) {
  const enc = ENCODINGS[outputEncoding];
  if (!enc) throw new Error(`k6 runner shim: hmac output encoding ${outputEncoding} is not supported`);
  const out = createHmac(algorithm, secret).update(data).digest(enc);
  return outputEncoding === 'base64raw' ? out.replace(/=+$/, '') : out;
}
export default { hmac };
