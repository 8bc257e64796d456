import { afterAll, describe, expect, it } from 'vitest';
import type { MilestoneContext } from '../actors/milestone/index.js';
import { MILESTONE } from '../src/app/milestones.js';
import { Registry } from '../src/runtime/registry.js';
import { failure } from './helpers/client.js';
import { useEngine } from './helpers/engine.js';
import { deposit, funded, key } from './helpers/flows.js';

const t = useEngine();

/**
 * A second gateway whose resident actors hear nothing of the other gateway's appends (its
 * follow subscription has not delivered yet): the worst case of the multi-gateway lag.
 */
function deafGateway(): Registry<MilestoneContext> {
  return new Registry<MilestoneContext>({ kind: MILESTONE, log: t.engine.log, mailboxMax: 16, actorsMax: 100, actorIdleMs: 60_000 });
}
const deaf: Registry<MilestoneContext>[] = [];
afterAll(() => deaf.forEach((r) => r.close()));

describe('a refusal is never answered from a state the log has moved past', () => {
  it('a command legal only in the newer state is applied, not refused from the resident one', async () => {
    await deposit(t.client, 'emp-stale', '50.00');
    const id = await funded(t.client, 'emp-stale', 'fl-stale', '10.00', 'p-stale');
    const other = deafGateway();
    deaf.push(other);
    expect((await other.read(id)).state).toBe('funded');
    // Through this gateway: the employer asks to cancel; the other one still holds `funded`.
    await t.client.m('RequestCancellation', 'emp-stale', { milestone_id: id, reason_code: 'NO_LONGER_NEEDED', idempotency_key: key() });
    // The freelancer's rejection reaches the other gateway: illegal in `funded`, legal now.
    const after = await other.send(id, {
      key: 'fl-stale:reject-1',
      digest: 'reject',
      event: { type: 'REJECT_CANCELLATION', by: { id: 'fl-stale', roles: [] }, at: new Date().toISOString() },
    });
    expect(after.state).toBe('funded');
    expect(after.version).toBe(3);
    const seen = await t.client.m('GetMilestone', 'fl-stale', { milestone_id: id });
    expect(seen.milestone.status).toBe('FUNDED');
  });

  it('a refusal from a final state costs no second read of the log', async () => {
    await deposit(t.client, 'emp-final', '50.00');
    const id = await funded(t.client, 'emp-final', 'fl-final', '10.00', 'p-final');
    await t.client.m('ReleaseMilestone', 'emp-final', { milestone_id: id, idempotency_key: key() });
    const other = deafGateway();
    deaf.push(other);
    const log = t.engine.log;
    const readLast = log.readLast.bind(log);
    let reads = 0;
    log.readLast = (subject: string) => {
      if (subject.endsWith(id)) reads++;
      return readLast(subject);
    };
    try {
      const cancel = {
        type: 'CANCEL',
        by: { id: 'emp-final', roles: [] },
        at: new Date().toISOString(),
        reasonCode: '',
        reason: '',
        awardAccepted: false,
      };
      const refuse = () => other.send(id, { key: key('emp-final:'), digest: 'cancel', event: cancel });
      // The first command loads (one read) and is refused from the final state it read.
      expect((await failure(refuse())).reason).toBe('ILLEGAL_IN_STATUS');
      expect(reads).toBe(1);
      // Resident and final: refused from memory.
      await failure(refuse());
      expect(reads).toBe(1);
    } finally {
      log.readLast = readLast;
    }
  });
});
