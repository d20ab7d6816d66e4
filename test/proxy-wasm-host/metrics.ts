// Metrics (contract.md §9): stats live in one process-wide store by name (all VMs update the
// same stat); ids are per VM, low two bits = type (counter 0, gauge 1, histogram 2), stepping by 4
// from the type value, as Envoy's Wasm::next*MetricId does (first counter id is 4).
import { Status } from "./types.ts";

export enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

interface Stat {
  type: MetricType;
  name: string;
  value: bigint;
  samples: bigint[];
}

export class MetricStore {
  private readonly stats = new Map<string, Stat>();

  stat(type: MetricType, name: string): Stat {
    const key = `${type}\0${name}`;
    let s = this.stats.get(key);
    if (!s) this.stats.set(key, (s = { type, name, value: 0n, samples: [] }));
    return s;
  }

  find(type: MetricType, name: string): Stat | undefined {
    return this.stats.get(`${type}\0${name}`);
  }

  all(): Stat[] {
    return [...this.stats.values()];
  }
}

/** One VM's metric-id table (Envoy keeps it on the Wasm instance). */
export class VmMetrics {
  private readonly ids = new Map<number, Stat>();
  private next = [0, 1, 2];

  constructor(private readonly store: MetricStore) {}

  define(type: number, name: string): { status: Status; id?: number } {
    if (type > 2) return { status: Status.BadArgument };
    const id = (this.next[type] += 4);
    this.ids.set(id, this.store.stat(type, name));
    return { status: Status.Ok, id };
  }

  increment(id: number, delta: bigint): Status {
    const type = id & 3;
    if (type === MetricType.Histogram || type === 3) return Status.BadArgument;
    const s = this.ids.get(id);
    if (!s) return Status.NotFound;
    if (type === MetricType.Counter) {
      if (delta <= 0n) return Status.BadArgument;
      s.value += delta;
    } else {
      s.value += delta; // gauges go down too
    }
    return Status.Ok;
  }

  record(id: number, value: bigint): Status {
    const s = this.ids.get(id);
    if (!s) return Status.NotFound;
    const type = id & 3;
    if (type === MetricType.Counter) s.value += value;
    else if (type === MetricType.Gauge) s.value = value;
    else s.samples.push(value);
    return Status.Ok;
  }

  get(id: number): { status: Status; value?: bigint } {
    const type = id & 3;
    if (type !== MetricType.Counter && type !== MetricType.Gauge) return { status: Status.BadArgument };
    const s = this.ids.get(id);
    if (!s) return { status: Status.NotFound };
    return { status: Status.Ok, value: s.value };
  }
}
