// k6/metrics: Counter, Rate, Trend, Gauge; samples go to the main thread, which aggregates them.
import { sample } from './runtime.mjs';

class Metric {
  constructor(name, type) {
    this.name = name;
    this.type = type;
  }
  add(value, tags) {
    sample(this.name, this.type, typeof value === 'boolean' ? (value ? 1 : 0) : Number(value), tags ?? {});
  }
}
export class Counter extends Metric {
  constructor(name) {
    super(name, 'counter');
  }
}
export class Rate extends Metric {
  constructor(name) {
    super(name, 'rate');
  }
}
export class Trend extends Metric {
  constructor(name) {
    super(name, 'trend');
  }
}
export class Gauge extends Metric {
  constructor(name) {
    super(name, 'gauge');
  }
}
export default { Counter, Rate, Trend, Gauge };
