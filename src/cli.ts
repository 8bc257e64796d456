/**
 * `escrow`, the command line for people: `npm run cli -- <command> ...` in a checkout, or the
 * `escrow` bin of an installed package. It talks to a gateway over gRPC like any service
 * (`--target`, else GRPC_ADDRESS, else the embedded engine's endpoints.json) with a token it
 * mints from the deployment's HS256 secret (AUTH_JWT_SECRET, else the embedded development
 * secret) or one given with `--token`. Human-readable output; `--json` prints the replies.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EscrowClient, type RpcError } from './client.js';
import { toolConfig } from './config.js';
import { readEndpoints } from './dev/endpoints.js';
import { mintToken } from './dev/tokens.js';

const USAGE = `usage: escrow <command> [arguments] [options]

  token <user> [--roles payments,arbiter,support] [--ttl 12h]   mint a development token (HS256)
  deposit <user> <amount> [--ref R]                     credit a user (as the payments role)
  withdraw <amount> --as <user> [--ref R]
  award <freelancer> --as <employer> --project <id> [--employer E] [--key K]   register a project (--employer: as the marketplace role)
  create <freelancer> <amount> --as <employer> --project <id> [--description D] [--key K]
  release <milestone> --as <employer> [--amount A] [--key K]
  cancel <milestone> --as <user> [--reason-code CODE] [--reason TEXT] [--key K]
  get <milestone> --as <user>
  list --as <user> [--direction incoming|outgoing]
  watch <milestone> --as <user>                          print each change until a final status
  balance <user> [--as <user>]
  audit                                                 npm run audit
  consume                                               npm run consume

options: --target host:port  --currency USD  --token JWT (instead of minting)  --json
         --tls-ca FILE [--tls-cert FILE --tls-key FILE]  (a gateway with GRPC_TLS_*)`;

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    as: { type: 'string' },
    roles: { type: 'string' },
    ttl: { type: 'string', default: '12h' },
    ref: { type: 'string' },
    project: { type: 'string' },
    employer: { type: 'string' },
    description: { type: 'string', default: '' },
    key: { type: 'string' },
    amount: { type: 'string' },
    'reason-code': { type: 'string', default: 'OTHER' },
    reason: { type: 'string', default: '' },
    direction: { type: 'string' },
    currency: { type: 'string', default: 'USD' },
    target: { type: 'string' },
    token: { type: 'string' },
    json: { type: 'boolean', default: false },
    'tls-ca': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

class UsageError extends Error {}
const COMMANDS = new Set([
  'token',
  'deposit',
  'withdraw',
  'award',
  'create',
  'release',
  'cancel',
  'get',
  'list',
  'watch',
  'balance',
  'audit',
  'consume',
]);

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

const money = (amount: string) => ({ currency_code: o.currency, amount });
const fmt = (m: { amount?: string; currency_code?: string } | null | undefined) => (m ? `${m.amount} ${m.currency_code}` : '-');

/** What the CLI reads of the replies (the proto's field names, as @grpc/proto-loader gives them). */
interface MoneyView {
  amount?: string;
  currency_code?: string;
}
interface MilestoneView {
  id: string;
  status: string;
  amount?: MoneyView | null;
  held?: MoneyView | null;
  released?: MoneyView | null;
  returned?: MoneyView | null;
  employer_id: string;
  freelancer_id: string;
  project_id: string;
  version: string;
  history?: { version: string; type: string; actor_id: string }[];
}
interface ReplyView {
  milestone: MilestoneView;
  project: { id: string; employer_id: string; freelancer_id: string; award_accepted: boolean; version: number };
  milestones: MilestoneView[];
  available?: MoneyView | null;
  held?: MoneyView | null;
  incoming?: MoneyView | null;
  pending?: MoneyView | null;
  /** A deposit's or a withdrawal's status. */
  status: string;
}

/** One line per milestone, then its history when there is one. */
function showMilestone(m: MilestoneView): string {
  const lines = [
    `${m.id}  ${m.status}  ${fmt(m.amount)} (held ${fmt(m.held)}, released ${fmt(m.released)}, returned ${fmt(m.returned)})  ${m.employer_id} -> ${m.freelancer_id}  project ${m.project_id}  v${m.version}`,
  ];
  for (const h of m.history ?? []) lines.push(`  v${h.version} ${h.type} by ${h.actor_id}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const [command, ...args] = positionals;
  if (o.help || !command) {
    console.log(USAGE);
    return command || o.help ? 0 : 64;
  }
  if (!COMMANDS.has(command)) throw new UsageError(`unknown command ${command}`);
  if (command === 'audit' || command === 'consume') return runTool(command);
  const config = await toolConfig();
  const secret = config.authJwtSecret;
  if (command === 'token') {
    console.log(
      await mintToken(need(secret, 'a secret (AUTH_JWT_SECRET, or a running embedded engine)'), need(args[0], 'the user'), {
        roles: o.roles ? o.roles.split(',') : [],
        expiresIn: o.ttl,
      }),
    );
    return 0;
  }
  const target = o.target ?? process.env.GRPC_ADDRESS ?? readEndpoints(config.dataDir)?.grpcAddress ?? '127.0.0.1:50051';
  const credentials = o['tls-ca']
    ? grpc.credentials.createSsl(
        readFileSync(o['tls-ca']),
        o['tls-key'] ? readFileSync(o['tls-key']) : null,
        o['tls-cert'] ? readFileSync(o['tls-cert']) : null,
      )
    : grpc.credentials.createInsecure();
  if (!o.token && !secret) throw new UsageError('no token: give --token, or set AUTH_JWT_SECRET (or run the embedded engine)');
  const client = new EscrowClient(target, secret ?? '', credentials);
  const as = (user: string, roles: string[] = []) => (o.token ? Promise.resolve(o.token) : client.token(user, roles));
  const call = async (
    service: 'MilestoneService' | 'AccountService',
    method: string,
    user: string,
    request: object,
    roles: string[] = [],
  ) => client.callWithToken<ReplyView>(service, method, request, await as(user, roles));
  const print = (reply: unknown, human: string) => console.log(o.json ? JSON.stringify(reply) : human);
  const key = o.key ?? randomUUID();
  try {
    switch (command) {
      case 'deposit': {
        const r = await call(
          'AccountService',
          'Deposit',
          o.as ?? 'payments-cli',
          {
            user_id: need(args[0], 'the user'),
            amount: money(need(args[1], 'the amount')),
            external_reference: o.ref ?? `cli-${randomUUID()}`,
          },
          ['payments'],
        );
        print(r, `deposit ${r.status}`);
        return 0;
      }
      case 'withdraw': {
        const r = await call('AccountService', 'Withdraw', need(o.as, '--as'), {
          amount: money(need(args[0], 'the amount')),
          external_reference: o.ref ?? `cli-${randomUUID()}`,
        });
        print(r, `withdrawal ${r.status}`);
        return 0;
      }
      case 'award': {
        const onBehalf = o.employer !== undefined;
        const r = await call(
          'MilestoneService',
          'AwardProject',
          need(o.as, '--as'),
          {
            project_id: need(o.project, '--project'),
            freelancer_id: need(args[0], 'the freelancer'),
            ...(onBehalf ? { employer_id: o.employer } : {}),
            idempotency_key: key,
          },
          onBehalf ? ['marketplace'] : [],
        );
        const p = r.project;
        print(
          r,
          `${p.id}  employer ${p.employer_id} -> freelancer ${p.freelancer_id}  award ${p.award_accepted ? 'accepted' : 'open'}  v${p.version}`,
        );
        return 0;
      }
      case 'create': {
        const r = await call('MilestoneService', 'CreateMilestone', need(o.as, '--as'), {
          project_id: need(o.project, '--project'),
          freelancer_id: need(args[0], 'the freelancer'),
          amount: money(need(args[1], 'the amount')),
          description: o.description,
          idempotency_key: key,
        });
        print(r, showMilestone(r.milestone));
        return 0;
      }
      case 'release': {
        const r = await call('MilestoneService', 'ReleaseMilestone', need(o.as, '--as'), {
          milestone_id: need(args[0], 'the milestone'),
          ...(o.amount ? { amount: money(o.amount) } : {}),
          idempotency_key: key,
        });
        print(r, showMilestone(r.milestone));
        return 0;
      }
      case 'cancel': {
        const r = await call('MilestoneService', 'CancelMilestone', need(o.as, '--as'), {
          milestone_id: need(args[0], 'the milestone'),
          reason_code: o['reason-code'],
          reason: o.reason,
          idempotency_key: key,
        });
        print(r, showMilestone(r.milestone));
        return 0;
      }
      case 'get': {
        const r = await call('MilestoneService', 'GetMilestone', need(o.as, '--as'), { milestone_id: need(args[0], 'the milestone') });
        print(r, showMilestone(r.milestone));
        return 0;
      }
      case 'list': {
        const direction = o.direction ? o.direction.toUpperCase() : 'OUTGOING';
        const r = await call('MilestoneService', 'ListMilestones', need(o.as, '--as'), { direction, page_size: 100 });
        print(r, r.milestones.length === 0 ? 'no milestones' : r.milestones.map((m) => showMilestone(m)).join('\n'));
        return 0;
      }
      case 'balance': {
        const user = need(args[0] ?? o.as, 'the user');
        const r = await call('AccountService', 'GetBalance', o.as ?? user, { user_id: user, currency_code: o.currency });
        print(r, `${user}: available ${fmt(r.available)}, held ${fmt(r.held)}, incoming ${fmt(r.incoming)}, pending ${fmt(r.pending)}`);
        return 0;
      }
      case 'watch': {
        const stream = client.stream('WatchMilestone', await as(need(o.as, '--as')), { milestone_id: need(args[0], 'the milestone') });
        await new Promise<void>((resolve, reject) => {
          stream.on('data', (r: ReplyView) => print(r, showMilestone({ ...r.milestone, history: [] })));
          stream.on('error', reject);
          stream.on('end', resolve);
        });
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } finally {
    client.close();
  }
}

/** audit and consume are scripts of their own: run them with this process's Node and loader. */
function runTool(name: 'audit' | 'consume'): Promise<number> {
  const compiled = import.meta.url.endsWith('.js');
  const script = name === 'audit' ? `./audit.${compiled ? 'js' : 'ts'}` : `../examples/consumer.${compiled ? 'js' : 'ts'}`;
  const loader = compiled ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...loader, fileURLToPath(new URL(script, import.meta.url)), ...positionals.slice(1)], {
    stdio: 'inherit',
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`escrow: ${err.message}\n\n${USAGE}`);
      process.exit(64);
    }
    const e = err as Partial<RpcError> & Error;
    if (typeof e.code === 'number') {
      // A refusal of the engine: its gRPC status and stable reason.
      console.error(
        o.json
          ? JSON.stringify({ code: grpc.status[e.code], reason: e.reason, details: e.details })
          : `${grpc.status[e.code]} ${e.details}`,
      );
      process.exit(1);
    }
    console.error(`escrow: ${e.message || String(err)}`);
    process.exit(1);
  },
);
