import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REASONS, reasonsTable, type ReasonInfo } from './reasons.js';

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

const CLASS_CODE: Record<string, string> = {
  MoneyError: 'INVALID_ARGUMENT',
  Unauthenticated: 'UNAUTHENTICATED',
  InvalidArgument: 'INVALID_ARGUMENT',
  FailedPrecondition: 'FAILED_PRECONDITION',
  PermissionDenied: 'PERMISSION_DENIED',
  NotFound: 'NOT_FOUND',
  Unavailable: 'UNAVAILABLE',
  Aborted: 'ABORTED',
  ResourceExhausted: 'RESOURCE_EXHAUSTED',
  DeadlineExceeded: 'DEADLINE_EXCEEDED',
};

/**
 * Every stable reason the code can answer with, and the code it is answered with where the
 * site says (an error class, a reject call, a refusal row, the permission tables; `bad` and
 * `busy` in the gateway; '' where the site does not name one).
 */
function reasonsInCode(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  const add = (reason: string, code: string) => {
    if (CODES.has(reason) && reason !== 'INTERNAL' && reason !== 'DEADLINE_EXCEEDED') return;
    found.set(reason, (found.get(reason) ?? new Set()).add(code));
  };
  for (const file of [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'actors'))]) {
    if (file.endsWith('src/reasons.ts')) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new (\w+)\(\s*'([A-Z][A-Z0-9_]+)'/g)) if (CLASS_CODE[m[1]!]) add(m[2]!, CLASS_CODE[m[1]!]!);
    for (const m of text.matchAll(/new EscrowError\(\s*'([A-Z_]+)',\s*'([A-Z][A-Z0-9_]+)'/g)) add(m[2]!, m[1]!);
    for (const m of text.matchAll(/\breject\w*\(\s*'([A-Z_]+)',\s*'([A-Z][A-Z0-9_]+)'/g)) add(m[2]!, m[1]!);
    for (const m of text.matchAll(/code: '([A-Z_]+)',\s*reason: '([A-Z][A-Z0-9_]+)'/g)) add(m[2]!, m[1]!);
    for (const m of text.matchAll(/\bbad\(\s*'([A-Z][A-Z0-9_]+)'/g)) add(m[1]!, 'INVALID_ARGUMENT');
    for (const m of text.matchAll(/\bbusy\(\s*'([A-Z][A-Z0-9_]+)'/g)) add(m[1]!, 'RESOURCE_EXHAUSTED');
    for (const m of text.matchAll(/\? null : '([A-Z][A-Z0-9_]+)'|\? '([A-Z][A-Z0-9_]+)' : isParty/g))
      add((m[1] ?? m[2])!, 'PERMISSION_DENIED');
    for (const m of text.matchAll(/(?<!code: '[A-Z_]+',\s*)\breason: '([A-Z][A-Z0-9_]+)'/g)) add(m[1]!, '');
  }
  return found;
}

/** The ledger's quarantine reasons: not answers of the API, listed in docs/operations.md. */
function quarantineReasons(): Set<string> {
  const text = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
  return new Set([...text.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
}

describe('the reasons (src/reasons.ts, the one list callers can rely on)', () => {
  const inCode = reasonsInCode();
  const known = REASONS as Record<string, ReasonInfo>;

  it('every reason the code answers with is in the list', () => {
    expect(inCode.size).toBeGreaterThan(60);
    const quarantine = quarantineReasons();
    expect([...inCode.keys()].filter((r) => !(r in known) && !quarantine.has(r)).sort()).toEqual([]);
  });

  it('each is answered with the code the list gives it', () => {
    const wrong = [...inCode].flatMap(([reason, codes]) => {
      const r = known[reason];
      if (!r) return [];
      return [...codes]
        .filter((c) => c !== '' && c !== r.code && c !== r.alsoAs?.code)
        .map((c) => `${reason}: ${c}, the list says ${r.code}`);
    });
    expect(wrong).toEqual([]);
  });

  it('lists no reason the code no longer answers with', () => {
    const text = [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'actors'))]
      .filter((f) => !f.endsWith('src/reasons.ts'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    expect(Object.keys(known).filter((r) => !text.includes(`'${r}'`))).toEqual([]);
  });

  it("docs/api.md's table is the list's (npm run docs:reasons rewrites it)", () => {
    const api = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
    expect(/<!-- reasons:start -->\n([\s\S]*?)\n<!-- reasons:end -->/.exec(api)?.[1]).toBe(reasonsTable());
  });
});
