import { expect } from 'vitest';
import type { Engine } from '../../src/engine.js';
import { runAudit } from '../../src/ledger/auditor.js';
import { eventually } from './engine.js';

/** Waits until the ledger consumer has applied and acknowledged everything in the stream. */
export async function ledgerCaughtUp(engine: Engine, timeoutMs = 30_000): Promise<void> {
  const { jsm, names } = engine.log;
  await eventually(async () => {
    const info = await jsm.consumers.info(names.stream, names.ledgerConsumer);
    expect(info.num_pending).toBe(0);
    expect(info.num_ack_pending).toBe(0);
  }, timeoutMs);
}

/** The auditor's verdict on the engine's namespace: no violation, nothing left to apply. */
export async function expectLedgerSound(engine: Engine): Promise<void> {
  const report = await runAudit(engine.log, engine.pool);
  expect(report.violations).toEqual([]);
  expect(report.moneyEvents).toBe(report.postings);
}
