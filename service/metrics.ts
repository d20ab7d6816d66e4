// Prometheus metrics, one Registry per app (tests run several apps in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
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

  const calls = new Counter({
    name: "mirror_cache_calls_total",
    help: "Calls answered, by stack and outcome (pass, hit, miss, denied, invalid, …)",
    labelNames: ["stack", "outcome"] as const,
    registers: [registry],
  });
  const wait = new Histogram({
    name: "mirror_cache_wait_seconds",
    help: "How long mirror calls waited for their record",
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const upstream = new Histogram({
    name: "mirror_cache_upstream_seconds",
    help: "Upstream latency of forwarded test calls (dispatch to last body byte)",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
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

  // Label children resolved once: `inc()` on a child skips prom-client's per-call label hashing.
  const children = new Map<string, { inc(): void }>();
  return {
    registry,
    call(stack, outcome) {
      const k = stack + outcome;
      let c = children.get(k);
      if (!c) {
        c = calls.labels(stack, outcome);
        children.set(k, c);
      }
      c.inc();
    },
    observeWait: (s) => wait.observe(s),
    observeUpstream: (s) => upstream.observe(s),
    egressDenied: () => denied.inc(),
    storeError: () => storeErrors.inc(),
  };
}
