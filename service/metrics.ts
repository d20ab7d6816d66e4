// Prometheus metrics, one Registry per app (tests run several apps in one process).
//
// The hot paths only bump numbers: call outcomes are counted in plain objects and handed to
// prom-client when it collects (a scrape), and the two latency histograms are our own (a bucket
// array, exposed in prom-client's histogram format). prom-client's own `inc()`/`observe()` hash
// labels and validate on every call, which was 3% of a mirror hit's CPU time.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { CacheStore } from "./store/types.ts";

export type Outcome =
  | "pass"
  | "hit"
  | "miss"
  | "denied"
  | "invalid"
  | "body_too_large"
  | "upstream_timeout"
  | "upstream_unavailable"
  | "upstream_response_too_large"
  | "store_unavailable"
  | "shutting_down"
  | "client_closed"
  | "bad_request"
  | "internal_error";

export type StackLabel = "test" | "mirror" | "none";

export interface Metrics {
  readonly registry: Registry;
  call(stack: StackLabel, outcome: Outcome): void;
  /** Seconds a mirror call waited for its record (0-ish for an immediate hit). */
  observeWait(seconds: number): void;
  /** Seconds an upstream took, from dispatch to the last body byte. */
  observeUpstream(seconds: number): void;
  egressDenied(): void;
  storeError(): void;
}

export function createMetrics(store: CacheStore, opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });

  // Counts not yet handed to prom-client: one slot per (stack, outcome), found by a nested lookup
  // (no string built per call).
  const slots: Record<StackLabel, Partial<Record<Outcome, { n: number }>>> = { test: {}, mirror: {}, none: {} };
  new Counter({
    name: "mirror_cache_calls_total",
    help: "Calls answered, by stack and outcome (pass, hit, miss, denied, invalid, …)",
    labelNames: ["stack", "outcome"] as const,
    registers: [registry],
    collect() {
      for (const [stack, byOutcome] of Object.entries(slots)) {
        for (const [outcome, slot] of Object.entries(byOutcome)) {
          if (slot.n === 0) continue;
          this.inc({ stack, outcome }, slot.n);
          slot.n = 0;
        }
      }
    },
  });
  const wait = new BucketHistogram(
    "mirror_cache_wait_seconds",
    "How long mirror calls waited for their record",
    [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  const upstream = new BucketHistogram(
    "mirror_cache_upstream_seconds",
    "Upstream latency of forwarded test calls (dispatch to last body byte)",
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  registry.registerMetric(wait as never);
  registry.registerMetric(upstream as never);
  new Gauge({
    name: "mirror_cache_store_bytes",
    help: "Bytes held by the store's records (as the store counts them)",
    registers: [registry],
    collect() {
      try {
        this.set(store.stats().bytes);
      } catch {
        // a store that cannot count now reports its last value
      }
    },
  });
  new Gauge({
    name: "mirror_cache_store_entries",
    help: "Records held by the store",
    registers: [registry],
    collect() {
      try {
        this.set(store.stats().entries);
      } catch {
        // as above
      }
    },
  });
  const denied = new Counter({
    name: "mirror_cache_egress_denied_total",
    help: "Forwards refused by the egress policy",
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: "mirror_cache_store_errors_total",
    help: "Store operations that failed (store unreachable or erroring)",
    registers: [registry],
  });

  return {
    registry,
    call(stack, outcome) {
      (slots[stack][outcome] ??= { n: 0 }).n++;
    },
    observeWait: (s) => wait.observe(s),
    observeUpstream: (s) => upstream.observe(s),
    egressDenied: () => denied.inc(),
    storeError: () => storeErrors.inc(),
  };
}

interface HistogramValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/** A label-less Prometheus histogram whose `observe` is a bucket search and three additions; it
 * is registered on a prom-client Registry and exposed exactly like prom-client's Histogram. */
export class BucketHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  /** Per bucket (not cumulative); the last slot counts values above every bound. */
  private counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }

  /** prom-client's metric interface (Registry calls it for every scrape). */
  async get(): Promise<{ name: string; help: string; type: string; values: HistogramValue[]; aggregator: string }> {
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i];
      values.push({ labels: { le: this.bounds[i] }, value: acc, metricName: bucket });
    }
    values.push(
      { labels: { le: "+Inf" }, value: this.count, metricName: bucket },
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` },
      { labels: {}, value: this.count, metricName: `${this.name}_count` },
    );
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = this.count = 0;
  }
}
