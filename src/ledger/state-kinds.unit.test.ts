import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NEVER_HELD_STATUSES, UNFUNDED_STATUSES } from '../../actors/milestone/index.js';

/**
 * The read model's conservation constraint (migration 002, a CHECK written once in SQL)
 * names the statuses that hold nothing yet. The auditor reads them from the machine's tags;
 * the migration cannot, so this holds the two to the same list.
 */
describe("the read model's status lists", () => {
  const migration = readFileSync(new URL('./migrations/002_milestone_requests.sql', import.meta.url), 'utf8');
  const listed =
    /status IN \(([^)]*)\)/
      .exec(migration)?.[1]
      ?.match(/'[A-Z_]+'/g)
      ?.map((s) => s.slice(1, -1)) ?? [];

  it("migration 002's exemption from amount = held + released + returned is the machine's 'unfunded' states", () => {
    expect([...listed].sort()).toEqual([...UNFUNDED_STATUSES].sort());
  });

  it('the statuses that may never hold are the unfunded ones but PENDING_FUNDING', () => {
    expect([...NEVER_HELD_STATUSES].sort()).toEqual(UNFUNDED_STATUSES.filter((s) => s !== 'PENDING_FUNDING').sort());
  });
});
