import { PAYMENTS_ROLE, ARBITER_ROLE, SUPPORT_ROLE, type Caller } from '../../actors/decision.js';
import { ResourceExhausted } from '../errors.js';
import { metrics } from '../metrics.js';

/** What a call costs: a command, a read, or a watch stream held open. */
export type CallClass = 'write' | 'read' | 'watch';

export interface CallerLimitsOptions {
  /** Calls in progress for the whole gateway (ESCROW_INFLIGHT_MAX). */
  inflightMax: number;
  /** Of those, kept for callers with a role (payments, arbiter, support): users are refused beyond inflightMax - reserved. */
  reservedForRoles: number;
  /** Calls one user may have in progress. */
  perCallerInflightMax: number;
  /** Token buckets per user and class: `rate` tokens a second, at most `burst`. */
  rates: Record<'write' | 'read', { rate: number; burst: number }>;
  /** Watch streams one user may hold open, and how long one may last before the gateway ends it. */
  watchesPerCallerMax: number;
  watchMaxAgeMs: number;
}

/** Users tracked at once; beyond it the least recently seen are forgotten (their buckets start full again). */
const TRACKED_MAX = 100_000;

interface Usage {
  inflight: number;
  watches: number;
  buckets: Partial<Record<'write' | 'read', { tokens: number; at: number }>>;
}

/**
 * Per-caller admission, in one place: a bound on the calls of the whole gateway, a share of it
 * kept for the internal services (payments, arbiter, support) so a flood of users cannot starve them,
 * a bound on each user's calls in progress and watch streams, and a token bucket per user and
 * class. A refusal is RESOURCE_EXHAUSTED with a stable reason and `retry_after_ms` in the
 * ErrorInfo metadata. Callers with a role are bounded by the gateway's total only.
 */
export class CallerLimits {
  private inflight = 0;
  private readonly users = new Map<string, Usage>();

  constructor(private readonly o: CallerLimitsOptions) {}

  /** Admits a call of `caller`; returns the function that ends it. Throws RESOURCE_EXHAUSTED. */
  admit(caller: Caller, cls: CallClass, now = Date.now()): () => void {
    const privileged = [PAYMENTS_ROLE, ARBITER_ROLE, SUPPORT_ROLE].some((r) => caller.roles.includes(r));
    const max = privileged ? this.o.inflightMax : this.o.inflightMax - this.o.reservedForRoles;
    if (this.inflight >= max) throw busy('GATEWAY_BUSY', 'too many calls in progress; retry with backoff', 100);
    if (privileged) {
      this.inflight++;
      return once(() => this.inflight--);
    }
    const u = this.usage(caller.id);
    if (u.inflight >= this.o.perCallerInflightMax)
      throw busy('CALLER_BUSY', `more than ${this.o.perCallerInflightMax} calls of this caller in progress`, 100);
    if (cls === 'watch' && u.watches >= this.o.watchesPerCallerMax) {
      throw busy('WATCH_LIMIT', `at most ${this.o.watchesPerCallerMax} WatchMilestone streams per caller`, 1_000);
    }
    const bucket = cls === 'watch' ? 'read' : cls;
    const wait = this.take(u, bucket, now);
    if (wait > 0) throw busy('RATE_LIMITED', `too many ${bucket} calls of this caller; retry in ${wait} ms`, wait);
    this.inflight++;
    u.inflight++;
    if (cls === 'watch') u.watches++;
    return once(() => {
      this.inflight--;
      u.inflight--;
      if (cls === 'watch') u.watches--;
    });
  }

  get watchMaxAgeMs(): number {
    return this.o.watchMaxAgeMs;
  }

  private usage(id: string): Usage {
    let u = this.users.get(id);
    if (u) {
      this.users.delete(id);
    } else {
      u = { inflight: 0, watches: 0, buckets: {} };
      if (this.users.size >= TRACKED_MAX) {
        // Forget the least recently seen idle user.
        for (const [k, v] of this.users) {
          if (v.inflight === 0) {
            this.users.delete(k);
            break;
          }
        }
      }
    }
    this.users.set(id, u);
    return u;
  }

  /** Takes a token; returns 0, or how many ms until one is there. */
  private take(u: Usage, cls: 'write' | 'read', now: number): number {
    const { rate, burst } = this.o.rates[cls];
    const b = u.buckets[cls] ?? (u.buckets[cls] = { tokens: burst, at: now });
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / rate) * 1000);
  }
}

function busy(reason: string, message: string, retryAfterMs: number): ResourceExhausted {
  metrics.limited.inc({ reason });
  return new ResourceExhausted(reason, message, { retry_after_ms: String(retryAfterMs) });
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}
