// k6/encoding: b64encode and b64decode with k6's encodings (std, rawstd, url, rawurl).
export function b64encode(input, encoding = 'std') {
  const b = Buffer.from(typeof input === 'string' ? input : new Uint8Array(input));
  const url = encoding === 'url' || encoding === 'rawurl';
  let s = b.toString(url ? 'base64url' : 'base64');
  if (encoding === 'url') s += '='.repeat((4 - (s.length % 4)) % 4);
  if (encoding === 'rawstd') s = s.replace(/=+$/, '');
  return s;
}
export function b64decode(input, encoding = 'std', format) {
  const b = Buffer.from(input, encoding === 'url' || encoding === 'rawurl' ? 'base64url' : 'base64');
  return format === 's' ? b.toString('utf8') : b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
}
export default { b64encode, b64decode };
