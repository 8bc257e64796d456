// Module hooks of the k6 runner shim's VU threads: k6's built-in modules resolve to the shims here.
const SHIMS = new Set(['k6', 'k6/net/grpc', 'k6/execution', 'k6/crypto', 'k6/encoding', 'k6/metrics']);
export async function resolve(specifier, context, next) {
  if (SHIMS.has(specifier))
    return { url: new URL(`./shim/${specifier.replaceAll('/', '_')}.mjs`, import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}

// A k6 script is an ES module wherever it lies: a .js file outside a "type": "module" package
// (a script in /tmp) would otherwise load as CommonJS on Node 22+, where its imports miss the shims.
export async function load(url, context, next) {
  if (url.startsWith('file:') && url.endsWith('.js') && !url.includes('/node_modules/')) return next(url, { ...context, format: 'module' });
  return next(url, context);
}
