/**
 * The top of a V8 CPU profile: `npx tsx load/profile-top.ts FILE.cpuprofile [N]` prints the N
 * functions with the most self time (and their share), then the same grouped by package, as
 * `--cpu-prof` writes them (see ESCROW_CPU_PROFILE_DIR in tools/processes.ts).
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const [file, n = '20'] = process.argv.slice(2);
const p = JSON.parse(readFileSync(file!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<number, number>();
p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const node of p.nodes) {
  const t = self.get(node.id) ?? 0;
  if (t === 0) continue;
  const f = node.callFrame;
  const where = f.url
    .replace(/^file:\/\//, '')
    .replace(/.*node_modules\//, 'node_modules/')
    .replace(/^\/.*?\/(src|actors|load)\//, '$1/');
  const name = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + t);
  const pkg = where.startsWith('node_modules/')
    ? where
        .split('/')
        .slice(1, where.split('/')[1]!.startsWith('@') ? 3 : 2)
        .join('/')
    : where === ''
      ? `(${f.functionName || 'vm'})`
      : where.startsWith('node:')
        ? `node:${where.slice(5).split('/')[0] ?? ''}`
        : where.split('/')[0]!;
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + t);
}
const show = (m: Map<string, number>, k: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .forEach(([name, t]) => console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${name}`));
console.log(`total ${(total / 1e6).toFixed(1)} s of samples in ${file}`);
console.log('-- by function (self time)');
show(byFunction, Number(n));
console.log('-- by package');
show(byPackage, 12);
