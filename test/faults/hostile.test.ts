import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { connect as netConnect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEscrowPackage } from '../../src/gateway/proto.js';
import { failure, PAYMENTS, TEST_SECRET, usd } from '../helpers/client.js';
import { useEngine } from '../helpers/engine.js';
import { balance, deposit, funded, key } from '../helpers/flows.js';
import { expectLedgerSound, ledgerCaughtUp } from '../helpers/ledger.js';
import { FC_SEED, SHORT } from './rig.js';

const t = useEngine({ env: { ESCROW_GRPC_MAX_MESSAGE_BYTES: '16384' } });
let milestone: string;
beforeAll(async () => {
  await deposit(t.client, 'emp', '1000.00');
  milestone = await funded(t.client, 'emp', 'fl', '10.00', 'proj');
});

async function streamMessages(): Promise<number> {
  return (await t.engine.log.jsm.streams.info(t.engine.log.names.stream)).state.messages;
}

const sign = (claims: Record<string, unknown>, o: { secret?: string; sub?: string; exp?: number; nbf?: number } = {}) => {
  let j = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(o.sub ?? 'emp');
  j = j.setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 600);
  if (o.nbf !== undefined) j = j.setNotBefore(o.nbf);
  return j.sign(new TextEncoder().encode(o.secret ?? TEST_SECRET));
};

describe('hostile tokens never have an effect', () => {
  it.each<[string, () => Promise<string | null>, grpc.status]>([
    ['none', async () => null, grpc.status.UNAUTHENTICATED],
    ['malformed', async () => 'a.b', grpc.status.UNAUTHENTICATED],
    ['wrong secret', () => sign({}, { secret: 'wrong-secret-0123456789' }), grpc.status.UNAUTHENTICATED],
    [
      'alg none',
      async () =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'emp', exp: 9e9 })).toString('base64url')}.`,
      grpc.status.UNAUTHENTICATED,
    ],
    ['expired', () => sign({}, { exp: Math.floor(Date.now() / 1000) - 5 }), grpc.status.UNAUTHENTICATED],
    ['not yet valid', () => sign({}, { nbf: Math.floor(Date.now() / 1000) + 3600 }), grpc.status.UNAUTHENTICATED],
    ['the engine itself as subject', () => sign({}, { sub: 'system' }), grpc.status.UNAUTHENTICATED],
    ["another user's milestone", () => sign({}, { sub: 'mallory' }), grpc.status.PERMISSION_DENIED],
    [
      'a forged payments role on a wrong secret',
      () => sign({ roles: ['payments'] }, { secret: 'x'.repeat(20) }),
      grpc.status.UNAUTHENTICATED,
    ],
  ])('%s', async (_name, token, code) => {
    const before = await streamMessages();
    const tok = await token();
    const release = await failure(
      t.client.callWithToken('MilestoneService', 'ReleaseMilestone', { milestone_id: milestone, idempotency_key: key() }, tok),
    );
    const dep = await failure(
      t.client.callWithToken('AccountService', 'Deposit', { user_id: 'mallory', amount: usd('5.00'), external_reference: key() }, tok),
    );
    expect(release.code).toBe(code);
    expect([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED]).toContain(dep.code);
    expect(await streamMessages()).toBe(before);
  });
});

describe('hostile messages get clean errors and the process stays up', () => {
  it('an oversized request is refused', async () => {
    const err = await failure(
      t.client.m('CreateMilestone', 'emp', {
        project_id: 'proj',
        freelancer_id: 'fl',
        amount: usd('1.00'),
        description: 'x'.repeat(20_000),
        idempotency_key: key(),
      }),
    );
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it('bytes that are not the message, and unknown enum values', async () => {
    const pkg = loadEscrowPackage();
    const def = (pkg.MilestoneService.service as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>).CreateMilestone!;
    const raw = new grpc.Client(t.config.grpcAddress, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${await t.client.token('emp')}`);
    const codes: number[] = [];
    for (const bytes of [
      randomBytes(64),
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      Buffer.from([0x2a, 0x05, 0x08, 0x96, 0x01, 0x12, 0x00]),
    ]) {
      codes.push(
        await new Promise<number>((resolve) =>
          raw.makeUnaryRequest(
            def.path,
            (b: Buffer) => b,
            def.responseDeserialize,
            bytes,
            md,
            (err) => resolve(err ? err.code : 0),
          ),
        ),
      );
    }
    raw.close();
    for (const c of codes) expect([grpc.status.INTERNAL, grpc.status.INVALID_ARGUMENT, grpc.status.UNIMPLEMENTED]).toContain(c);
    const unknownEnum = await failure(t.client.m('ListMilestones', 'emp', { direction: 99 }));
    expect(unknownEnum).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'DIRECTION_REQUIRED' });
    const badStatus = await failure(t.client.m('ListMilestones', 'emp', { direction: 'OUTGOING', statuses: [77] }));
    expect(badStatus).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'STATUS_INVALID' });
  });

  it('random bytes on the gRPC port', async () => {
    const port = Number(t.config.grpcAddress.split(':')[1]);
    await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<void>((resolve) => {
            const s = netConnect(port, '127.0.0.1', () => s.end(randomBytes(1 + Math.floor(Math.random() * 4096))));
            s.on('error', () => resolve());
            s.on('close', () => resolve());
            s.setTimeout(1_000, () => s.destroy());
          }),
      ),
    );
    const ok = await t.client.m('GetMilestone', 'emp', { milestone_id: milestone });
    expect(ok.milestone.id).toBe(milestone);
  });
});

// An oracle written apart from src/money.ts: plain decimal, no sign or exponent, no leading
// zeros, at most two decimals for USD, positive, at most 10^12.
function validUsd(s: string): boolean {
  if (!/^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$/.test(s)) return false;
  const [i, f = ''] = s.split('.');
  if (i!.length > 13) return false;
  const cents = BigInt(i!) * 100n + BigInt((f + '00').slice(0, 2));
  return cents > 0n && cents <= 100_000_000_000_000n;
}

const amountLike = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.stringMatching(/^-?[0-9]{0,16}(\.[0-9]{0,4})?$/),
  fc.constantFrom(
    '0',
    '00',
    '01',
    '1.',
    '.5',
    '1e3',
    '1E2',
    ' 1',
    '1 ',
    '+1',
    '١٢٣',
    '１２',
    '1,00',
    '0x10',
    'NaN',
    'Infinity',
    '9'.repeat(40),
    '1000000000000',
    '1000000000000.01',
    "1'; DROP TABLE accounts;--",
    '\u00001',
  ),
);
const idLike = fc.oneof(
  fc.string({ maxLength: 70 }),
  fc.constantFrom(
    'a.b',
    'a*',
    'a>',
    'a b',
    "x'; DROP TABLE milestones;--",
    '../../etc/passwd',
    '${jndi:ldap://x}',
    'é',
    'ok-id_1',
    'A'.repeat(64),
    'A'.repeat(65),
  ),
);

describe('fuzzed amounts and ids', () => {
  it('an amount is accepted exactly when it is valid; an invalid one is INVALID_ARGUMENT and changes nothing', async () => {
    const before = { messages: await streamMessages(), emp: await balance(t.client, 'emp') };
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(amountLike, async (amount) => {
        const r = t.client.a('Withdraw', 'fuzz-nobody', { amount: usd(amount), external_reference: key('fz') });
        const outcome = await r.then(
          () => 'OK',
          (e: { code: number; reason: string }) => e,
        );
        if (validUsd(amount)) {
          valid++;
          // A valid amount passes validation; the user has no money, so the user's account actor refuses it.
          expect(outcome).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: 'INSUFFICIENT_FUNDS' });
        } else {
          expect(outcome).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
        }
      }),
      { numRuns: SHORT ? 100 : 400, seed: FC_SEED },
    );
    // Nothing is appended: a refused withdrawal is refused before the log, and an invalid one at the door.
    expect(valid).toBeGreaterThan(0);
    expect(await streamMessages()).toBe(before.messages);
    expect(await balance(t.client, 'emp')).toEqual(before.emp);
  });

  it('ids that are not valid are INVALID_ARGUMENT and change nothing', async () => {
    const before = await streamMessages();
    await fc.assert(
      fc.asyncProperty(idLike, idLike, async (project, freelancer) => {
        const valid = (s: string) => /^[A-Za-z0-9_-]{1,64}$/.test(s);
        fc.pre(!(valid(project) && valid(freelancer)));
        const err = await failure(
          t.client.m('CreateMilestone', 'emp', {
            project_id: project,
            freelancer_id: freelancer,
            amount: usd('1.00'),
            idempotency_key: key(),
          }),
        );
        expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      }),
      { numRuns: SHORT ? 100 : 300, seed: FC_SEED },
    );
    expect(await streamMessages()).toBe(before);
  });

  it('afterwards the ledger holds together', async () => {
    await ledgerCaughtUp(t.engine);
    await expectLedgerSound(t.engine);
    await t.client.a('GetBalance', PAYMENTS, { user_id: 'emp', currency_code: 'USD' });
  });
});
