import { describe, expect, it } from 'vitest';
import { milestoneMachine, SAGA_DISPUTE_STAGES, SAGA_STATUSES, SAGAS, sagaCausation, sagaOutcomeEvent } from './index.js';

describe('the sagas table', () => {
  it("names states of the machine that handle both of their outcome's commands", () => {
    for (const [state, saga] of Object.entries(SAGAS)) {
      const on = Object.keys(milestoneMachine.states[state]?.config.on ?? {});
      expect(on, state).toEqual(expect.arrayContaining([saga.ok, saga.failed]));
    }
  });

  it('finds its states in the read model by status or dispute stage', () => {
    expect(SAGA_STATUSES).toEqual(['PENDING_FUNDING']);
    expect(SAGA_DISPUTE_STAGES).toEqual(['ESCALATING']);
  });

  it('takes the causation from the asking event only, and makes the outcome its command', () => {
    expect(sagaCausation('escalating', { type: 'escalation_requested', id: 'e1' })).toBe('e1');
    expect(sagaCausation('escalating', { type: 'dispute_opened', id: 'e0' })).toBe('');
    const by = { id: 'system', roles: [] };
    expect(sagaOutcomeEvent('escalating', 'insufficient_funds', by, 'T')).toEqual({
      type: 'ESCALATION_FAILED',
      by,
      at: 'T',
      reason: 'INSUFFICIENT_FUNDS',
    });
    expect(sagaOutcomeEvent('pendingFunding', 'ok', by, 'T')).toEqual({ type: 'FUNDING_SUCCEEDED', by, at: 'T' });
  });
});
