#!/usr/bin/env node
// The `escrow` command (src/cli.ts): the compiled CLI after `npm run build`, else the TypeScript
// sources through tsx (a development install).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli.ts', import.meta.url).href);
}
