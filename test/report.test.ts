import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { markdown, svg, writeReport, type ReportRow } from '../load/report.js';

const rows: ReportRow[] = [
  { workload: 'race', system: 'engine', perSecond: 1200, p50Ms: 40, p99Ms: 110 },
  { workload: 'race', system: 'baseline', perSecond: 1000, p50Ms: 45, p99Ms: 90 },
  { workload: 'race', system: 'ceiling', perSecond: 3300, p50Ms: 12, p99Ms: 40 },
  { workload: 'mixed', system: 'engine', perSecond: 800, p50Ms: 60, p99Ms: 200 },
];

describe('bench --report', () => {
  it('writes the figures as JSON, a markdown table and an SVG bar per workload and system', () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-'));
    const files = writeReport(dir, { any: 'result' }, rows, ['one note']);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['bench.json', 'bench.md', 'bench.svg']);
    expect(JSON.parse(readFileSync(files[0]!, 'utf8'))).toEqual({ any: 'result' });
    const md = markdown(rows, ['one note']);
    expect(md).toContain('| race | engine | 1200 | 40 | 110 |');
    expect(md).toContain('- one note');
    const chart = svg(rows, 'title <x>');
    expect(chart.startsWith('<svg')).toBe(true);
    // Four bars and the legend's three squares.
    expect(chart.match(/<rect [^>]*height="\d+" fill=/g)).toHaveLength(7);
    // The tallest bar is the largest figure; the title is escaped.
    expect(chart).toContain('3300/s');
    expect(chart).toContain('title &lt;x>');
  });
});
