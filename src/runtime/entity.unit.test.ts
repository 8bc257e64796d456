import { describe, expect, it } from 'vitest';
import {
  appliedRecord,
  compactContext,
  eventState,
  historyLine,
  historyOf,
  lastHistory,
  withKey,
  type EventContextRules,
  type Persisted,
} from './entity.js';

describe('an actor’s compact records', () => {
  it('idempotency records: found by exact hash, the last one wins, nothing found by a prefix or a digest', () => {
    let a = '';
    a = withKey(a, 'hashAAAAAAAAAAAAAAAAAA', 'digestAAAAAAAAAAAAAAAA', 1);
    a = withKey(a, 'hashBBBBBBBBBBBBBBBBBB', 'hashAAAAAAAAAAAAAAAAAA', 2);
    expect(appliedRecord(a, 'hashAAAAAAAAAAAAAAAAAA')).toEqual({ digest: 'digestAAAAAAAAAAAAAAAA', version: 1 });
    expect(appliedRecord(a, 'hashBBBBBBBBBBBBBBBBBB')).toEqual({ digest: 'hashAAAAAAAAAAAAAAAAAA', version: 2 });
    expect(appliedRecord(a, 'hashAAAA')).toBeUndefined();
    expect(appliedRecord(a, 'digestAAAAAAAAAAAAAAAA')).toBeUndefined();
    a = withKey(a, 'hashAAAAAAAAAAAAAAAAAA', 'other', 3);
    expect(appliedRecord(a, 'hashAAAAAAAAAAAAAAAAAA')).toEqual({ digest: 'other', version: 3 });
    expect(() => withKey(a, 'has h', 'd', 4)).toThrow(/malformed/);
    expect(() => withKey(a, 'h', 'd\n', 4)).toThrow(/malformed/);
  });

  it('history lines read back as the entries they were made from, times included', () => {
    const entries = [
      { version: 1, type: 'created', by: 'emp-1', at: '2026-12-02T14:00:17.583Z', data: { amount: '10.00', employerFee: '0.50' } },
      { version: 2, type: 'cancellation_requested', by: 'emp-1', at: 'not a time', data: { reason: '中'.repeat(3), reasonCode: 'OTHER' } },
    ];
    const state = { history: entries.map(historyLine) } as unknown as Persisted<unknown>;
    expect(historyOf(state)).toEqual(entries);
    expect(lastHistory(state)).toEqual(entries[1]);
    expect(lastHistory({ history: [] as string[] } as unknown as Persisted<unknown>)).toBeUndefined();
  });

  it('an event carries a seldom-changed field only when it changes, the time field only when it is not the event’s time; a reader restores both', () => {
    const rules: EventContextRules = { carriedWhenChanged: ['terms', 'note'], firstEventAlways: ['terms'], timeField: 'at' };
    const initial = { terms: 'default', note: '', held: '0', at: '' };
    const first = { terms: 'default', note: '', held: '5', at: 't1' };
    const c1 = compactContext(first, initial, rules, null, 't1');
    expect(c1).toEqual({ terms: 'default', held: '5' });
    const second = { ...first, note: 'n', held: '0', at: 't0' };
    const c2 = compactContext(second, initial, rules, first, 't2');
    expect(c2).toEqual({ note: 'n', at: 't0' });
    const read = eventState({ subject: 'm', time: 't2', data: { version: 2, state: { state: 's', context: c2 } } }, initial, rules, {
      terms: 'default',
    });
    expect(read).toEqual({ id: 'm', state: 's', version: 2, context: second });
    const third = { ...second, at: 't3' };
    const c3 = compactContext(third, initial, rules, second, 't3');
    expect(c3).toEqual({});
    expect(
      eventState({ subject: 'm', time: 't3', data: { version: 3, state: { state: 's', context: c3 } } }, initial, rules, {
        terms: 'default',
        note: 'n',
      }).context,
    ).toEqual(third);
  });
});
