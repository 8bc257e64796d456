import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const CODES = new Set([
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.includes('.test.') ? [p] : [];
  });
}

/** Every stable reason the code can answer with: error constructors, `reason:` fields, reject calls and the machines' guard refusals. */
function reasonsInCode(): Set<string> {
  const found = new Set<string>();
  const patterns = [
    /new (?:MoneyError|Unauthenticated|InvalidArgument|FailedPrecondition|PermissionDenied|NotFound|Unavailable|Aborted|ResourceExhausted|DeadlineExceeded|AlreadyExists)\(\s*'([A-Z][A-Z0-9_]+)'/g,
    /\breason: '([A-Z][A-Z0-9_]+)'/g,
    /\breject\w*\(\s*'[A-Z_]+',\s*'([A-Z][A-Z0-9_]+)'/g,
    /\? null : '([A-Z][A-Z0-9_]+)'/g,
  ];
  for (const file of [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'actors'))]) {
    const text = readFileSync(file, 'utf8');
    for (const p of patterns) for (const m of text.matchAll(p)) if (!CODES.has(m[1]!)) found.add(m[1]!);
  }
  return found;
}

describe("the docs list every reason the engine answers with (docs/api.md; the quarantine's in docs/operations.md)", () => {
  it('no reason of the code is missing from the list (callers branch on them)', () => {
    const readme = ['api.md', 'operations.md'].map((f) => readFileSync(join(ROOT, 'docs', f), 'utf8')).join('\n');
    const reasons = reasonsInCode();
    expect(reasons.size).toBeGreaterThan(60);
    expect([...reasons].filter((r) => !readme.includes(`\`${r}\``)).sort()).toEqual([]);
  });
});
