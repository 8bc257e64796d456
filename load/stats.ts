/** Percentiles and a bounded-concurrency runner for the load tools. */

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarize(values: number[]): LatencySummary {
  const s = [...values].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    count: s.length,
    p50: round(percentile(s, 50)),
    p95: round(percentile(s, 95)),
    p99: round(percentile(s, 99)),
    max: round(s[s.length - 1] ?? 0),
  };
}

/** Runs `tasks` with at most `concurrency` in flight, starting none after `deadline` (epoch ms). */
export async function runBounded(
  tasks: (() => Promise<void>)[],
  concurrency: number,
  deadline = Number.POSITIVE_INFINITY,
): Promise<number> {
  let next = 0;
  let started = 0;
  const lane = async () => {
    while (next < tasks.length && Date.now() < deadline) {
      const task = tasks[next++]!;
      started++;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, tasks.length)) }, lane));
  return started;
}

export function elapsedMs(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e6;
}
