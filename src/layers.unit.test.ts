import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The import graph's rules, read from the sources (type-only imports count too): the pure
 * core (actors/) imports nothing of the service, and no module reaches itself again through
 * its imports. A newcomer who breaks one is told here which import did it.
 */

const ROOT = resolve(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The repository files a module imports (relative imports only; `.js` names the `.ts` source). */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  // `import x from '...'`, `export ... from '...'`, `import '...'` (side effects only) and `import('...')`.
  for (const m of text.matchAll(
    /^\s*(?:(?:import|export)\b[^'"]*?from\s+|import\s+)['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/gm,
  )) {
    const spec = m[1] ?? m[2] ?? '';
    out.push(relative(ROOT, resolve(dirname(join(ROOT, file)), spec.replace(/\.js$/, '.ts'))));
  }
  return out;
}

const files = [...sources('actors'), ...sources('src')];
const graph = new Map(files.map((f) => [f, imports(f)]));

describe('the import graph', () => {
  it('actors/ (the pure core) imports only actors/ and packages', () => {
    const outside = sources('actors').flatMap((f) =>
      graph
        .get(f)!
        .filter((to) => !to.startsWith('actors/'))
        .map((to) => `${f} -> ${to}`),
    );
    expect(outside).toEqual([]);
  });

  it('the gateway reaches the engine only through app/ (besides the pure core and the shared edges)', () => {
    const allowed = /^(actors\/|src\/gateway\/|src\/app\/|src\/(errors|log|metrics|money|tracing)\.ts$)/;
    const outside = sources('src/gateway').flatMap((f) =>
      (graph.get(f) ?? []).filter((to) => !allowed.test(to)).map((to) => `${f} -> ${to}`),
    );
    expect(outside).toEqual([]);
  });

  it('the runtime does not reach into the ledger (they share the outcome contract in events/)', () => {
    const outside = sources('src/runtime').flatMap((f) =>
      (graph.get(f) ?? []).filter((to) => to.startsWith('src/ledger/')).map((to) => `${f} -> ${to}`),
    );
    expect(outside).toEqual([]);
  });

  it('milestone commands are decided with the permission table (decideMilestone), never with the bare machine', () => {
    const bare = files.filter(
      (f) => /\bdecide\(\s*milestoneMachine\b/.test(readFileSync(join(ROOT, f), 'utf8')) && f !== 'actors/milestone/machine.ts',
    );
    expect(bare).toEqual([]);
  });

  it('has no cycles', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const to of graph.get(f) ?? []) if (graph.has(to)) visit(to, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('reads every import (the check above sees the graph)', () => {
    expect(graph.get('src/money.ts')).toContain('actors/money.ts');
    expect(graph.get('src/ledger/apply.ts')).toContain('src/runtime/entity.ts');
  });
});
