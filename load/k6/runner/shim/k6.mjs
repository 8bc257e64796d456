// k6: sleep, check, group, fail (the subset the scripts use).
import { blockFor, sample } from './runtime.mjs';

export function sleep(seconds) {
  blockFor(Number(seconds) * 1000);
}

export function check(value, sets, tags = {}) {
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    let ok = false;
    try {
      ok = Boolean(fn(value));
    } catch {
      ok = false;
    }
    sample('checks', 'rate', ok ? 1 : 0, { check: name, ...tags });
    all &&= ok;
  }
  return all;
}

export function group(_name, fn) {
  return fn();
}

export function fail(message) {
  throw new Error(message);
}

export default { sleep, check, group, fail };
