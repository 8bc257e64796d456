import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkHistory, parseHistory } from '../load/history.js';
import { evaluate } from '../load/k6/runner/run.js';
import { TEST_SECRET } from './helpers/client.js';
import { useEngine } from './helpers/engine.js';

const t = useEngine();
const ROOT = resolve(import.meta.dirname, '..');

/** Runs a k6 script through the runner shim (load/k6/runner), as CI does where k6 cannot be installed. */
function k6(script: string, env: Record<string, string>, extra: string[] = []): Promise<{ code: number; output: string }> {
  const args = [
    '--import',
    'tsx',
    'load/k6/runner/run.ts',
    script,
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ...extra,
  ];
  return new Promise((ok) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, AUTH_JWT_SECRET: TEST_SECRET, TARGET: t.config.grpcAddress },
    });
    let output = '';
    child.stdout.on('data', (d) => (output += String(d)));
    child.stderr.on('data', (d) => (output += String(d)));
    child.on('exit', (code) => ok({ code: code ?? -1, output }));
  });
}

describe('the k6 scripts, run end to end through the runner shim', () => {
  it('race.js: setup, a barrier per milestone, duplicates at once, teardown; thresholds pass; its calls prove against the log', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'k6-')), 'calls.json');
    const r = await k6('load/k6/race.js', { MILESTONES: '12', CONTENDERS: '6', DUPLICATES: '2', DISPUTE_SHARE: '0.25', SLOT_MS: '120' }, [
      '--out',
      `json=${out}`,
    ]);
    expect(r.output).toMatch(/threshold ok {3}race_double_wins: count==0/);
    expect(r.output).toMatch(/race_winners: 12\n/);
    expect(r.code).toBe(0);
    const calls = parseHistory(readFileSync(out, 'utf8'));
    expect(calls).toHaveLength(12 * 6 * 2);
    expect(new Set(calls.filter((c) => c.code === 'OK').map((c) => c.milestoneId)).size).toBe(12);
    expect((await checkHistory(t.engine.log, calls)).problems).toEqual([]);
  });

  it('throughput.js: a constant arrival rate for a few seconds; thresholds scoped to the scenario pass', async () => {
    // Correctness only: latency targets belong to benchmarks, not to a test on a busy machine.
    const r = await k6('load/k6/throughput.js', { RATE: '30', DURATION: '4s', USERS: '5', P95_MS: '600000', P99_MS: '600000' });
    expect(r.output).toMatch(/threshold ok {3}escrow_errors\{scenario:mixed\}: rate<0.01/);
    expect(r.code).toBe(0);
  });

  it('a threshold that fails makes the run fail (exit 99), like k6', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k6-'));
    writeFileSync(
      join(dir, 'planted.js'),
      `import { Counter } from 'k6/metrics';\nconst bad = new Counter('planted_bad');\nexport const options = { scenarios: { s: { executor: 'per-vu-iterations', vus: 2, iterations: 3 } }, thresholds: { planted_bad: ['count==0'] } };\nexport default function () { bad.add(1); }\n`,
    );
    const r = await k6(join(dir, 'planted.js'), {});
    expect(r.output).toMatch(/threshold FAIL planted_bad: count==0 \(6\)/);
    expect(r.code).toBe(99);
  });

  it('reads thresholds as k6 does: counts, rates, percentiles, tag filters', () => {
    const at = Date.now();
    const samples = [1, 2, 3, 4, 100].map((value, i) => ({
      metric: 'lat',
      type: 'trend' as const,
      value,
      tags: { scenario: i < 4 ? 'a' : 'b' },
      time: at,
    }));
    expect(evaluate(samples, 'lat', 'p(50)<4').ok).toBe(true);
    expect(evaluate(samples, 'lat', 'max<100').ok).toBe(false);
    expect(evaluate(samples, 'lat{scenario:a}', 'max<=4').ok).toBe(true);
    expect(
      evaluate(
        [
          { metric: 'e', type: 'rate', value: 1, tags: {}, time: at },
          { metric: 'e', type: 'rate', value: 0, tags: {}, time: at },
        ],
        'e',
        'rate<0.6',
      ).actual,
    ).toBe(0.5);
  });
});
