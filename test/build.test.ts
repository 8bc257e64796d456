import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { EscrowClient, PAYMENTS, usd } from './helpers/client.js';
import { dropNamespace, engineEnv, freshNamespace } from './helpers/engine.js';
import { key } from './helpers/flows.js';

/** Production runs the compiled engine: `npm run build`, then `node dist/src/main.js` (no tsx). */
describe('the build', () => {
  it('compiles to dist/ and the compiled engine serves and shuts down cleanly', async () => {
    const build = spawnSync('npm', ['run', 'build'], { encoding: 'utf8', timeout: 120_000 });
    expect(build.status, build.stderr).toBe(0);
    const { freePort } = await import('../src/dev/embedded.js');
    const ns = freshNamespace();
    // EngineProcess runs src/main.ts through tsx; this one runs the compiled file with plain node.
    const { spawn } = await import('node:child_process');
    const port = await freePort();
    const child = spawn(process.execPath, ['dist/src/main.js', 'all'], {
      env: { ...process.env, ...engineEnv(ns), GRPC_ADDRESS: `127.0.0.1:${port}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += String(d)));
    child.stderr.on('data', (d) => (output += String(d)));
    try {
      const { portOpen, sleep } = await import('../tools/processes.js');
      for (let i = 0; i < 100 && !(await portOpen(port)); i++) await sleep(100);
      const c = new EscrowClient(`127.0.0.1:${port}`);
      const r = await c.a('Deposit', PAYMENTS, { user_id: 'built', amount: usd('2.00'), external_reference: key() });
      expect(r.status, output).toBe('APPLIED');
      c.close();
      // The container's HEALTHCHECK command, against this engine.
      const health = spawnSync(process.execPath, ['dist/src/dev/healthcheck.js'], {
        env: { ...process.env, GRPC_ADDRESS: `0.0.0.0:${port}` },
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect(health.status, health.stderr).toBe(0);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await dropNamespace(ns);
    }
  }, 180_000);
});
