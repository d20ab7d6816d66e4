// A slow cache (its answer later than the filter's `timeout_ms`): the sidecar gives the filter
// Envoy's own 504 for the dispatch. Test stack fails open (the upstream answers the app), mirror
// fails closed (503 unavailable) — and the mirror still never reaches the upstream.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, newRequestId, startSandbox, type Sandbox } from "./support.ts";

describe("slow cache: test call fails open, mirror call refused", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ timeoutMs: 300 });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("a dispatch that times out: test app served by the upstream, mirror app gets 503 unavailable", async () => {
    sb.upstream.reset();
    const rid = newRequestId("slow");
    // the upstream takes 2 s; the cache forwards the test call and waits for it, far past the
    // filter's 300 ms (margins wide enough that load on the machine cannot change the outcome)
    const r = await sb.sendPair(rid, { path: "/api/checkout?calls=items&up=delay_ms%3D2000", mirrorDelayMs: 5 });
    const t = call(r.test, "items");
    expect(t.status).toBe(200);
    expect(t.xMirrorCache).toBeNull(); // answered by the upstream itself (fail-open)
    expect(call(r.mirror, "items")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });

    const testRec = sb.sidecars.test.records.find((x) => x.requestId === rid && x.authority === sb.upstream.authority)!;
    expect(testRec.outcome).toBe("fail-open");
    expect(testRec.dispatches.map((d) => d.result)).toEqual(["timeout"]);
    const mirrorRec = sb.sidecars.mirror.records.find((x) => x.requestId === rid && x.authority === sb.upstream.authority)!;
    expect(mirrorRec.outcome).toBe("refused");
    expect(mirrorRec.dispatches.map((d) => d.result)).toEqual(["timeout"]);

    // Fail-open can cost a second upstream call for the test stack (the cache's forward, if it
    // started before the dispatch was abandoned, and the direct one); none came from the mirror.
    const seen = sb.upstream.stats.requests.filter((x) => x.requestId === rid);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.length).toBeLessThanOrEqual(2);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
    expect(sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0).toBe(0);
  });
});
