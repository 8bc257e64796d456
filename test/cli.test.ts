import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_SECRET } from './helpers/client.js';
import { services, useEngine } from './helpers/engine.js';

const t = useEngine();
const ROOT = resolve(import.meta.dirname, '..');

/** The `escrow` bin as a person runs it, against this test's engine. */
function escrow(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const env = {
    ...process.env,
    AUTH_JWT_SECRET: TEST_SECRET,
    DATABASE_URL: services().databaseUrl,
    NATS_URL: services().natsUrl,
    ESCROW_NAMESPACE: t.namespace,
    GRPC_ADDRESS: t.config.grpcAddress,
  };
  return new Promise((ok) => {
    const child = spawn(process.execPath, ['bin/escrow.mjs', ...args], { cwd: ROOT, env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    child.on('exit', (code) => ok({ code: code ?? -1, out, err }));
  });
}

describe('the escrow CLI, through the real engine', () => {
  it('deposit, create, get, partial release, list, balance, watch to the end, refusals with their reason, --json, audit', async () => {
    expect((await escrow('deposit', 'emp-cli', '30.00')).out).toMatch(/deposit APPLIED/);
    expect((await escrow('award', 'fl-cli', '--as', 'emp-cli', '--project', 'p-cli')).out).toMatch(
      /^p-cli {2}employer emp-cli -> freelancer fl-cli {2}award open {2}v1/,
    );
    const created = await escrow('create', 'fl-cli', '12.00', '--as', 'emp-cli', '--project', 'p-cli', '--description', 'logo', '--json');
    expect(created.code).toBe(0);
    const id = JSON.parse(created.out).milestone.id as string;
    expect(JSON.parse(created.out).milestone.status).toBe('FUNDED');
    const shown = (await escrow('get', id, '--as', 'fl-cli')).out;
    expect(shown).toMatch(new RegExp(`^${id}  FUNDED  12.00 USD .*emp-cli -> fl-cli`));
    expect(shown).toContain('v1 created by emp-cli');
    expect((await escrow('release', id, '--as', 'emp-cli', '--amount', '5.00')).out).toMatch(/PARTIALLY_RELEASED|FUNDED/);
    expect((await escrow('list', '--as', 'fl-cli', '--direction', 'incoming')).out).toContain(id);
    const watching = escrow('watch', id, '--as', 'fl-cli');
    await new Promise((r) => setTimeout(r, 500));
    expect((await escrow('release', id, '--as', 'emp-cli')).out).toMatch(/RELEASED/);
    const watched = await watching;
    expect(watched.code).toBe(0);
    expect(watched.out).toMatch(/RELEASED/);
    expect((await escrow('balance', 'fl-cli')).out).toMatch(/fl-cli: available 12.00 USD/);
    const refused = await escrow('release', id, '--as', 'emp-cli');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^FAILED_PRECONDITION ILLEGAL_IN_STATUS/);
    const stranger = await escrow('get', id, '--as', 'mallory', '--json');
    expect(JSON.parse(stranger.err)).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'NOT_PARTY' });
    const audit = await escrow('audit');
    expect(audit.code).toBe(0);
  });

  it('mints a development token, and says what is wrong with a command line', async () => {
    const token = await escrow('token', 'someone', '--roles', 'payments');
    expect(token.out.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const usage = await escrow('bogus');
    expect(usage.code).toBe(64);
    expect(usage.err).toMatch(/unknown command bogus/);
    expect((await escrow('create', 'fl-x', '1.00', '--as', 'emp-x')).err).toMatch(/missing --project/);
  });
});
