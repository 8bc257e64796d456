import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ignoreFailure, retriedLater, setProcessLogger } from './log.js';

/** Handled failures are said, not swallowed: each names what failed, at its level. */
describe('handled failures', () => {
  const lines: { level: number; what: string; msg: string; err?: { message: string } }[] = [];
  setProcessLogger(pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) }));

  it('a background step that the next round retries is logged at warn with its error', () => {
    retriedLater('firing due timers')(new Error('connection refused'));
    expect(lines.at(-1)).toMatchObject({ level: 40, what: 'firing due timers', err: { message: 'connection refused' } });
  });

  it('a failure that changes nothing is logged at debug, and neither throws', () => {
    expect(() => ignoreFailure('closing the pool on stop')(new Error('already closed'))).not.toThrow();
    expect(lines.at(-1)).toMatchObject({ level: 20, what: 'closing the pool on stop', err: { message: 'already closed' } });
  });
});
