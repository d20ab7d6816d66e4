// DESIGN.md invariant: a mirror-stack call never reaches a real upstream. The upstream counts
// every call by the stack header it carries; the mirror sidecar records where it sent requests.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, newRequestId, runSteps, startSandbox, UPSTREAM_CALLS, type Sandbox, type Step } from "./support.ts";

describe("the upstream sees only test-stack calls", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("paired requests, whatever their timing: every upstream call is a test call, each exactly once", async () => {
    sb.upstream.reset();
    const delays = [5, 0, 30, -50, 10, -5];
    const steps: Step[] = delays.map((d, i) => ({
      kind: "pair",
      requestId: newRequestId(`only-test-${i}`),
      path: `/api/checkout?user=${i}`,
      mirrorDelayMs: d,
    }));
    const results = await runSteps(sb, steps, 3);

    // The upstream got exactly the test app's calls: 3 per request (items, items2, order).
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
    expect(sb.upstream.stats.total).toBe(steps.length * UPSTREAM_CALLS.length);
    const rids = new Set(steps.map((s) => s.requestId));
    for (const req of sb.upstream.stats.requests) {
      expect(rids.has(req.requestId!)).toBe(true);
      expect(req.stack).not.toBe("mirror");
    }
    // The mirror sidecar never sent anything to the upstream: every upstream-bound mirror call
    // was answered by the cache (hit), with the test call's record.
    expect(sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0).toBe(0);
    const mirrorUpstreamRecords = sb.sidecars.mirror.records.filter((r) => r.authority === sb.upstream.authority);
    expect(mirrorUpstreamRecords).toHaveLength(steps.length * UPSTREAM_CALLS.length);
    for (const r of mirrorUpstreamRecords) {
      expect(r.outcome).toBe("cache");
      expect(r.forwardedTo).toBeUndefined();
      expect(r.dispatches.map((d) => d.stack)).toEqual(["mirror"]);
    }
    for (const r of results) {
      for (const name of UPSTREAM_CALLS) expect(call(r.mirror!, name).xMirrorCache).toBe("hit");
    }
  });

  it("a mirror app that spoofs the test stack header is still tagged mirror and kept off the upstream", async () => {
    sb.upstream.reset();
    const rid = newRequestId("spoof");
    const path = "/api/checkout?calls=items,order&spoof=test";
    const r = await sb.sendPair(rid, { path });
    expect(call(r.mirror, "items").xMirrorCache).toBe("hit");
    expect(call(r.mirror, "order").xMirrorCache).toBe("hit");
    expect(sb.upstream.stats.total).toBe(2);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
    // the dispatch carried exactly one stack header, the filter's own
    const dispatched = sb.sidecars.mirror.records.filter((x) => x.requestId === rid).flatMap((x) => x.dispatches);
    expect(dispatched.length).toBe(2);
    for (const d of dispatched) expect(d.stack).toBe("mirror");
  });

  it("a mirror call without a request id is refused (503 no-request-id), not sent upstream", async () => {
    sb.upstream.reset();
    const r = await sb.sendMirror(undefined, "/api/checkout?calls=items,order");
    for (const name of ["items", "order"] as const) {
      const c = call(r, name);
      expect(c.status).toBe(503);
      expect(c.xMirrorCache).toBe("no-request-id");
    }
    expect(sb.upstream.stats.total).toBe(0);
  });

  it("a test call without a request id still reaches its upstream (once)", async () => {
    sb.upstream.reset();
    const r = await sb.sendTest(undefined, "/api/checkout?calls=items");
    expect(call(r, "items").status).toBe(200);
    expect(sb.upstream.stats.total).toBe(1);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
  });
});

describe("the upstream sees only test-stack calls, with a custom stack header (x-azar-mirror: false|true)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    const custom = { stack_header: "x-azar-mirror", stack_values: { test: "false", mirror: "true" } };
    sb = await startSandbox({
      filterOverrides: { test: custom, mirror: custom, inbound: custom },
      cacheEnv: { MIRROR_CACHE_STACK_HEADER: "x-azar-mirror", MIRROR_CACHE_STACK_VALUES: "test=false,mirror=true" },
    });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("mirror calls get hits and the upstream never sees x-azar-mirror: true", async () => {
    const steps: Step[] = [0, 1, 2].map((i) => ({ kind: "pair", requestId: newRequestId(`azar-${i}`), mirrorDelayMs: i * 10 }));
    const results = await runSteps(sb, steps, 3);
    for (const r of results) for (const name of UPSTREAM_CALLS) expect(call(r.mirror!, name).xMirrorCache).toBe("hit");
    expect(sb.upstream.stats.byStack.true ?? 0).toBe(0);
    expect(sb.upstream.stats.total).toBe(steps.length * UPSTREAM_CALLS.length);
  });
});

describe("the upstream sees only test-stack calls, without body buffering (a plain Istio WasmPlugin)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ bufferBodies: false, allowOnHeadersStopIteration: false });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("a test POST goes to its upstream tagged test; the mirror POST is refused (503 body-not-buffered); GETs still pair", async () => {
    const rid = newRequestId("no-buffer");
    const r = await sb.sendPair(rid, { path: "/api/checkout?calls=items,order" });
    expect(call(r.test, "order").status).toBe(200);
    expect(call(r.test, "order").xMirrorCache).toBeNull();
    expect(call(r.mirror, "order")).toMatchObject({ status: 503, xMirrorCache: "body-not-buffered" });
    expect(call(r.mirror, "items").xMirrorCache).toBe("hit");
    expect(call(r.mirror, "items").body).toBe(call(r.test, "items").body);

    const posts = sb.upstream.stats.requests.filter((x) => x.requestId === rid && x.method === "POST");
    expect(posts.map((x) => x.stack)).toEqual(["test"]);
    expect(sb.upstream.stats.byStack.mirror ?? 0).toBe(0);
    expect(sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0).toBe(0);
    const testPost = sb.sidecars.test.records.find((x) => x.requestId === rid && x.method === "POST")!;
    expect(testPost.outcome).toBe("modified"); // stack header set, no dispatch
    expect(testPost.dispatches).toHaveLength(0);
  });
});
