// The service's own histogram and batched call counter are exposed exactly as prom-client's own
// Histogram and Counter would expose the same observations (dashboards and alerts built on the
// usual format keep working).
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { BucketHistogram, createMetrics } from "../../service/metrics.ts";
import { createMemoryStore } from "../../service/store/memory.ts";

const BOUNDS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const VALUES = [0, 0, 0.0005, 0.0007, 0.001, 0.02, 0.3, 0.5, 1, 4.2, 30, 31, 1e6, 0.00049];

describe("metrics exposition", () => {
  it("a BucketHistogram renders like prom-client's Histogram, bounds inclusive, before and after observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h = new BucketHistogram("x_seconds", "help text", BOUNDS);
    ours.registerMetric(h as never);
    const ref = new Histogram({ name: "x_seconds", help: "help text", buckets: BOUNDS, registers: [theirs] });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    for (const v of VALUES) {
      h.observe(v);
      ref.observe(v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    h.reset();
    ref.reset();
    ref.zero({});
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it("call outcomes counted between scrapes all reach the counter, by stack and outcome, and are not counted twice", async () => {
    const store = createMemoryStore({ maxBytes: 1 << 20 });
    const m = createMetrics(store);
    const theirs = new Registry();
    const ref = new Counter({ name: "mirror_cache_calls_total", help: "x", labelNames: ["stack", "outcome"], registers: [theirs] });
    const calls: Array<["test" | "mirror" | "none", "pass" | "hit" | "miss" | "invalid"]> = [["test", "pass"], ["mirror", "hit"], ["mirror", "hit"], ["none", "invalid"], ["mirror", "miss"]];
    const lines = async () => (await m.registry.getSingleMetricAsString("mirror_cache_calls_total")).split("\n").filter((l) => !l.startsWith("#")).sort();
    const refLines = async () => (await theirs.getSingleMetricAsString("mirror_cache_calls_total")).split("\n").filter((l) => !l.startsWith("#")).sort();
    for (const [s, o] of calls) {
      m.call(s, o);
      ref.inc({ stack: s, outcome: o });
    }
    expect(await lines()).toEqual(await refLines());
    expect(await lines()).toEqual(await refLines()); // a second scrape adds nothing
    m.call("mirror", "hit");
    ref.inc({ stack: "mirror", outcome: "hit" });
    expect(await lines()).toContain('mirror_cache_calls_total{stack="mirror",outcome="hit"} 3');
    expect(await lines()).toEqual(await refLines());
    await store.close();
  });
});
