// The soak (`npm run soak`, bench/soak.ts) in a short mode inside `npm test`: a few seconds of
// concurrent test+mirror pairs through the e2e sidecars. Asserts the invariants, never the speed:
// pairs completed, mirror hits with identical bytes, no mirror call on the upstream, no
// test call lost, metadata untouched, the service alive with RSS sampled. A deliberately broken
// mirror (its sidecar configured as the test stack) shows the soak's checks are not vacuous.
import { describe, expect, it } from "vitest";
import { runSoak } from "../../bench/soak.ts";

describe("soak, short mode", () => {
  it("4 s of concurrent pairs: invariants hold", async () => {
    const r = await runSoak({ seconds: 4, pairs: 3, windowSeconds: 2, write: false });
    expect(r.violations).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.pairsCompleted).toBeGreaterThan(0);
    expect(r.mirrorCalls).toBe(r.pairsCompleted * 3); // items, items2, order per pair
    // a miss or a refusal (a very slow machine) is not an invariant break; a wrong answer would be
    expect(r.hits + r.misses + r.mirrorRefused).toBe(r.mirrorCalls);
    expect(r.hits).toBeGreaterThan(0);
    expect(r.mismatchedBodies).toBe(0);
    expect(r.mirrorToUpstream).toBe(0);
    expect(r.testCallsLost).toBe(0);
    expect(r.upstreamCalls).toBe(r.testCalls);
    expect(r.metadataTaggedOrRerouted).toBe(0);
    expect(r.rss.samples.length).toBeGreaterThan(1);
    expect(r.rss.serviceMiB.end).toBeGreaterThan(0);
    expect(r.latencyMs.test.p99).toBeGreaterThanOrEqual(r.latencyMs.test.p50);
  }, 120_000);

  it("a mirror sidecar misconfigured as the test stack is caught: mirror calls on the upstream, bodies differ, not ok", async () => {
    const r = await runSoak({ seconds: 2, pairs: 2, write: false, sandbox: { filterOverrides: { mirror: { stack: "test" } } } });
    expect(r.ok).toBe(false);
    expect(r.mirrorToUpstream).toBeGreaterThan(0);
    expect(r.mismatchedBodies).toBeGreaterThan(0);
  }, 120_000);
});
