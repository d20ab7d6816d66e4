// DESIGN.md invariants under a cache outage: a test-stack call is never lost because the mirror
// machinery failed (fail-open: the upstream answers), and the mirror fails closed (503
// `x-mirror-cache: unavailable`, the upstream never reached).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, newRequestId, runSteps, startSandbox, UPSTREAM_CALLS, type Sandbox, type Step } from "./support.ts";

describe("cache down: test traffic still served, mirror refused", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("while the cache is up, pairs get pass / hit (baseline)", async () => {
    const r = await sb.sendPair(newRequestId("baseline"));
    for (const name of UPSTREAM_CALLS) {
      expect(call(r.test, name).xMirrorCache).toBe("pass");
      expect(call(r.mirror, name).xMirrorCache).toBe("hit");
    }
  });

  it("with the mirror-cache stopped, the test app's calls are answered by the upstream, the mirror's are refused", async () => {
    await sb.cache.stop();
    expect(sb.cache.running).toBe(false);
    sb.upstream.reset();
    const steps: Step[] = [0, 1, 2].map((i) => ({ kind: "pair", requestId: newRequestId(`down-${i}`), mirrorDelayMs: 5 }));
    const results = await runSteps(sb, steps, 3);

    for (const r of results) {
      for (const name of UPSTREAM_CALLS) {
        const t = call(r.test!, name);
        expect(t.status).toBe(200); // served
        expect(t.xMirrorCache).toBeNull(); // by the upstream itself, not by the cache
        expect(JSON.parse(t.body).service).toBe("upstream");
        const m = call(r.mirror!, name);
        expect(m.status).toBe(503);
        expect(m.xMirrorCache).toBe("unavailable");
      }
      expect(call(r.mirror!, "metadata").status).toBe(200);
    }
    // the upstream got each test call once, tagged test (fail-open keeps the stack header), and
    // nothing from the mirror
    expect(sb.upstream.stats.total).toBe(steps.length * UPSTREAM_CALLS.length);
    expect(sb.upstream.stats.byStack.test).toBe(steps.length * UPSTREAM_CALLS.length);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
    expect(sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0).toBe(0);
    // how the sidecars saw it: Envoy's own 503 (connection refused) for every dispatch
    const testUp = sb.sidecars.test.records.filter(
      (r) => r.authority === sb.upstream.authority && steps.some((s) => s.requestId === r.requestId),
    );
    expect(testUp.length).toBe(steps.length * UPSTREAM_CALLS.length);
    for (const r of testUp) {
      expect(r.outcome).toBe("fail-open");
      expect(r.dispatches.map((d) => d.result)).toEqual(["no-healthy-upstream"]);
    }
  });

  it("after the cache comes back, pairs get pass / hit again", async () => {
    await sb.cache.start();
    const r = await sb.sendPair(newRequestId("back"));
    for (const name of UPSTREAM_CALLS) {
      expect(call(r.test, name).xMirrorCache).toBe("pass");
      expect(call(r.mirror, name).xMirrorCache).toBe("hit");
      expect(call(r.mirror, name).body).toBe(call(r.test, name).body);
    }
  });

  it("a cache killed hard (SIGKILL) is the same: test served, mirror refused", async () => {
    await sb.cache.stop(true);
    sb.upstream.reset();
    const r = await sb.sendPair(newRequestId("killed"), { path: "/api/checkout?calls=items,order" });
    expect(call(r.test, "items").status).toBe(200);
    expect(call(r.test, "order").status).toBe(200);
    expect(call(r.mirror, "items")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });
    expect(call(r.mirror, "order")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });
    expect(sb.upstream.stats.total).toBe(2);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
    await sb.cache.start();
  });
});
