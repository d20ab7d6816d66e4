// A mirrored request whose test request never happened (or has not yet, within the cache's wait
// bound): the mirror app gets the cache's 504 `x-mirror-cache: miss`; the upstream is never
// reached and nothing is recorded for a later test call to collide with.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, newRequestId, startSandbox, type Sandbox } from "./support.ts";

describe("a mirror call whose test call never happened", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ cacheWaitMs: 500 });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("gets 504 miss, surfaced to the mirror app; the upstream is not reached", async () => {
    sb.upstream.reset();
    const rid = newRequestId("orphan");
    const r = await sb.sendMirror(rid, "/api/checkout?calls=items,order,metadata");
    for (const name of ["items", "order"] as const) {
      const c = call(r, name);
      expect(c.status).toBe(504);
      expect(c.xMirrorCache).toBe("miss");
      expect(JSON.parse(c.body).code).toBe("MIRROR_CACHE_MISS");
    }
    expect(call(r, "metadata").status).toBe(200);
    expect(sb.upstream.stats.total).toBe(0);
    const recs = sb.sidecars.mirror.records.filter((x) => x.requestId === rid && x.authority === sb.upstream.authority);
    expect(recs.map((x) => x.outcome)).toEqual(["cache", "cache"]);
  });

  it("a test request arriving after the mirror gave up is still served from the upstream, and the miss recorded nothing", async () => {
    sb.upstream.reset();
    const rid = newRequestId("late-test");
    const m = await sb.sendMirror(rid, "/api/checkout?calls=items");
    expect(call(m, "items")).toMatchObject({ status: 504, xMirrorCache: "miss" });
    const t = await sb.sendTest(rid, "/api/checkout?calls=items");
    expect(call(t, "items")).toMatchObject({ status: 200, xMirrorCache: "pass" });
    expect(JSON.parse(call(t, "items").body).service).toBe("upstream");
    expect(sb.upstream.stats.total).toBe(1);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
  });
});
