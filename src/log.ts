import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'escrow'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

/**
 * The process's logger for failures handled where no logger is passed (set by Engine.start;
 * silent until then, e.g. in unit tests).
 */
let processLogger: Logger = pino({ level: 'silent' });

export function setProcessLogger(logger: Logger): void {
  processLogger = logger;
}

/**
 * A failure that changes nothing: closing what is going away, a rollback after a failure, a
 * consumer already gone. Logged at debug with `what`, never thrown.
 */
export function ignoreFailure(what: string): (err: unknown) => void {
  return (err) => {
    processLogger.debug({ err, what }, 'ignored failure');
  };
}

/** A background step failed and its next round tries again: logged at warn with `what`, never thrown. */
export function retriedLater(what: string): (err: unknown) => void {
  return (err) => {
    processLogger.warn({ err, what }, 'background step failed; its next round tries again');
  };
}
