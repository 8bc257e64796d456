import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The bench's figures for people: `npm run bench -- --report DIR` writes bench.json, a
 * markdown table (bench.md) and a bar chart (bench.svg: throughput per workload, engine vs
 * locking baseline vs the grpc-js echo ceiling, with p50/p99 written on the bars).
 */
export interface ReportRow {
  workload: string;
  /** `cluster`: the engine on a three-node R3 cluster (bench --cluster). */
  system: 'engine' | 'baseline' | 'ceiling' | 'cluster';
  perSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

const COLORS: Record<ReportRow['system'], string> = { engine: '#2b6cb0', baseline: '#c05621', ceiling: '#718096', cluster: '#2f855a' };

export function markdown(rows: ReportRow[], notes: string[]): string {
  const lines = ['| workload | system | per second | p50 ms | p99 ms |', '|---|---|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.workload} | ${r.system} | ${r.perSecond} | ${r.p50Ms ?? ''} | ${r.p99Ms ?? ''} |`);
  return `# Benchmark\n\n${lines.join('\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
}

/** A grouped bar chart, one group per workload, as plain SVG (no library: a few rects and texts). */
export function svg(rows: ReportRow[], title: string): string {
  const workloads = [...new Set(rows.map((r) => r.workload))];
  const systems = (['engine', 'cluster', 'baseline', 'ceiling'] as const).filter((x) => rows.some((r) => r.system === x));
  const max = Math.max(1, ...rows.map((r) => r.perSecond));
  const bar = 46;
  const gap = 36;
  const groupWidth = systems.length * bar + gap;
  const height = 320;
  const top = 48;
  const chart = height - top - 64;
  const width = Math.max(640, 80 + workloads.length * groupWidth);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<line x1="60" y1="${top + chart}" x2="${width - 10}" y2="${top + chart}" stroke="#333"/>`,
  ];
  workloads.forEach((w, wi) => {
    const x0 = 70 + wi * groupWidth;
    systems.forEach((sys, si) => {
      const r = rows.find((x) => x.workload === w && x.system === sys);
      if (!r) return;
      const h = Math.round((r.perSecond / max) * chart);
      const x = x0 + si * bar;
      parts.push(`<rect x="${x}" y="${top + chart - h}" width="${bar - 6}" height="${h}" fill="${COLORS[sys]}"/>`);
      parts.push(`<text x="${x + (bar - 6) / 2}" y="${top + chart - h - 4}" text-anchor="middle">${r.perSecond}/s</text>`);
      if (r.p99Ms !== null)
        parts.push(
          `<text x="${x + (bar - 6) / 2}" y="${top + chart + 14}" text-anchor="middle" fill="#555">p99 ${Math.round(r.p99Ms)}</text>`,
        );
    });
    parts.push(
      `<text x="${x0 + (systems.length * bar) / 2}" y="${top + chart + 32}" text-anchor="middle" font-weight="bold">${esc(w)}</text>`,
    );
  });
  systems.forEach((sys, si) => {
    parts.push(
      `<rect x="${width - 240 + si * 78}" y="30" width="10" height="10" fill="${COLORS[sys]}"/><text x="${width - 226 + si * 78}" y="39">${sys}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function writeReport(dir: string, result: unknown, rows: ReportRow[], notes: string[]): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'bench.json'), join(dir, 'bench.md'), join(dir, 'bench.svg')];
  writeFileSync(files[0]!, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(files[1]!, markdown(rows, notes));
  writeFileSync(files[2]!, svg(rows, 'Escrow engine benchmark (one run, this machine): operations per second'));
  return files;
}
