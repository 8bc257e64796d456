/** `npm run docs:reasons`: writes src/reasons.ts's table into docs/api.md, between its markers. */
import { readFileSync, writeFileSync } from 'node:fs';
import { reasonsTable } from '../src/reasons.js';

const file = new URL('../docs/api.md', import.meta.url);
const text = readFileSync(file, 'utf8');
const next = text.replace(
  /<!-- reasons:start -->[\s\S]*?<!-- reasons:end -->/,
  `<!-- reasons:start -->\n${reasonsTable()}\n<!-- reasons:end -->`,
);
writeFileSync(file, next);
console.log(next === text ? 'docs/api.md: the reasons table was already current' : 'docs/api.md: reasons table written');
