// Module hooks of the k6 runner shim's VU threads: k6's built-in modules resolve to the shims here.
const SHIMS = new Set(['k6', 'k6/net/grpc', 'k6/execution', 'k6/crypto', 'k6/encoding', 'k6/metrics']);
export async function resolve(specifier, context, next) {
  if (SHIMS.has(specifier)) return { url: new URL(`./shim/${specifier.replaceAll('/', '_')}.mjs`, import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
