import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../tools/processes.js';
import { SAFE_REPLICATED_SERVER, versionAtLeast } from '../../src/events/log.js';
import { natsCluster, type NatsServer } from './infra.js';

/**
 * What the engine's safety rests on, checked on the nats-server of this machine: concurrent
 * appends with the same expected last subject sequence, of which at most one may be stored.
 * On replicated streams that holds only from nats-server 2.9.21 (nats-server#4320); the engine
 * refuses replicated streams on older servers.
 */

let nodes: NatsServer[];
let version = '';
beforeAll(async () => {
  nodes = await natsCluster(3);
  await sleep(3_000);
  const nc = await connect({ servers: nodes.map((n) => n.url) });
  version = nc.info?.version ?? '';
  await nc.close();
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.destroy()));
});

async function doubleAppends(replicas: number): Promise<number> {
  const nc = await connect({ servers: nodes.map((n) => n.url) });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 10_000 });
    const name = `CAS${replicas}_${Date.now()}`;
    for (let i = 0; ; i++) {
      try {
        await jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: replicas });
        break;
      } catch (err) {
        if (i > 20) throw err;
        await sleep(500);
      }
    }
    const js = jetstream(nc, { timeout: 10_000 });
    let doubles = 0;
    for (let s = 0; s < 100; s++) {
      const subject = `${name}.s${s}`;
      const first = await js.publish(subject, 'first', { expect: { lastSubjectSequence: 0 } });
      const results = await Promise.allSettled(
        Array.from({ length: 4 }, (_, i) =>
          js.publish(subject, `contender ${i}`, { msgID: `${subject}-${i}`, expect: { lastSubjectSequence: first.seq } }),
        ),
      );
      if (results.filter((r) => r.status === 'fulfilled').length > 1) doubles++;
    }
    await jsm.streams.delete(name);
    return doubles;
  } finally {
    await nc.close();
  }
}

describe(`conditional appends on this machine's nats-server`, () => {
  it('an R1 stream stores at most one of concurrent appends with the same expected sequence', async () => {
    expect(await doubleAppends(1)).toBe(0);
  });

  it(`an R3 stream does too from ${SAFE_REPLICATED_SERVER}; older servers store several, which is why the engine refuses them`, async () => {
    const doubles = await doubleAppends(3);
    console.log(`nats-server ${version}: ${doubles} of 100 subjects stored more than one conditional append on an R3 stream`);
    if (versionAtLeast(version, SAFE_REPLICATED_SERVER)) expect(doubles).toBe(0);
    // On an older server the bug shows (all 100 subjects in our runs on 2.9.10).
    else expect(doubles).toBeGreaterThan(0);
  });
});
