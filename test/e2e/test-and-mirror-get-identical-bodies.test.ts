// DESIGN.md invariant: mirror and test calls of the same key get byte-identical bodies. The
// upstream puts a per-call sequence number in every body, so only a replay of the test call's
// record can make the mirror's body equal.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  bodiesMatch,
  call,
  comparable,
  newRequestId,
  runSteps,
  startSandbox,
  summaryOf,
  UPSTREAM_CALLS,
  type Sandbox,
  type Step,
} from "./support.ts";

describe("test and mirror apps get identical downstream bodies", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("for every request id, whatever the mirror's timing (after, at once, before the test request)", async () => {
    const delays = [5, 0, 20, -40, 1, -10, 50, 3];
    const steps: Step[] = delays.map((d, i) => ({
      kind: "pair",
      requestId: newRequestId(`same-${i}`),
      path: `/api/checkout?user=${i}`,
      mirrorDelayMs: d,
    }));
    const results = await runSteps(sb, steps, 4);
    for (const r of results) {
      expect(comparable(r.mirror)).toEqual(comparable(r.test));
      expect(bodiesMatch(r)).toBe(true);
      for (const name of UPSTREAM_CALLS) {
        expect(call(r.test!, name).xMirrorCache).toBe("pass");
        expect(call(r.mirror!, name).xMirrorCache).toBe("hit");
        expect(call(r.mirror!, name).body).toBe(call(r.test!, name).body);
      }
    }
  });

  it("the comparison is meaningful: the two identical GETs of one request got different upstream bodies, replayed in order", async () => {
    const r = await sb.sendPair(newRequestId("order-of-calls"), { path: "/api/checkout?calls=items,items2" });
    const t1 = call(r.test, "items").body;
    const t2 = call(r.test, "items2").body;
    expect(t1).not.toBe(t2); // different upstream sequence numbers (n = 0 and n = 1 of one key tuple)
    expect(call(r.mirror, "items").body).toBe(t1);
    expect(call(r.mirror, "items2").body).toBe(t2);
    // and two request ids never share bodies
    const other = await sb.sendPair(newRequestId("other"), { path: "/api/checkout?calls=items,items2" });
    expect(call(other.mirror, "items").body).not.toBe(t1);
    expect(call(other.mirror, "items").body).toBe(call(other.test, "items").body);
  });

  it("the POST body is buffered and dispatched: the upstream saw it once, the mirror got the recorded answer", async () => {
    const rid = newRequestId("post");
    const r = await sb.sendPair(rid, { path: "/api/checkout?calls=order" });
    const body = JSON.parse(call(r.test, "order").body) as { receivedBodySha256: string | null; method: string };
    expect(body.method).toBe("POST");
    expect(body.receivedBodySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(call(r.mirror, "order").body).toBe(call(r.test, "order").body);
    const seen = sb.upstream.stats.requests.filter((x) => x.requestId === rid);
    expect(seen.map((x) => [x.method, x.bodyBytes > 0])).toEqual([["POST", true]]);
    // dispatched with its body by both sidecars (buffer_bodies: true)
    for (const sc of [sb.sidecars.test, sb.sidecars.mirror]) {
      const rec = sc.records.find((x) => x.requestId === rid && x.method === "POST")!;
      expect(rec.dispatches).toHaveLength(1);
      expect(rec.dispatches[0].bodyBytes).toBeGreaterThan(0);
    }
  });

  it("the mirror's answer carries the test call's recorded end-to-end headers, and no hop-by-hop headers", async () => {
    const rid = newRequestId("headers");
    await sb.sendPair(rid, { path: "/api/checkout?calls=items" });
    const answer = (sc: typeof sb.sidecars.test) => {
      const rec = sc.records.find((x) => x.requestId === rid && x.authority === sb.upstream.authority)!;
      expect(rec.outcome).toBe("cache");
      return new Map(rec.responseHeaders!.map(([k, v]) => [k, v]));
    };
    const t = answer(sb.sidecars.test);
    const m = answer(sb.sidecars.mirror);
    expect(t.get("x-mirror-cache")).toBe("pass");
    expect(m.get("x-mirror-cache")).toBe("hit");
    for (const k of ["set-cookie", "x-upstream-seq", "content-type"]) {
      expect(m.get(k)).toBeDefined();
      expect(m.get(k)).toBe(t.get(k));
    }
    for (const k of ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"]) {
      expect(t.has(k)).toBe(false);
      expect(m.has(k)).toBe(false);
    }
  });

  it("the mirror app sees the original host: the inbound filter removed Istio's -shadow suffix", async () => {
    const r = await sb.sendPair(newRequestId("host"), { path: "/api/checkout?calls=items" });
    expect(summaryOf(r.test).host).toBe(sb.apiAuthority);
    expect(summaryOf(r.mirror).host).toBe(sb.apiAuthority);
    const inbound = sb.sidecars.mirrorInbound!.records.at(-1)!;
    expect(inbound.authority).toBe(sb.apiAuthority.replace(":", "-shadow:"));
    expect(inbound.forwardedHeaders!.find(([k]) => k === ":authority")![1]).toBe(sb.apiAuthority);
  });
});

describe("test and mirror apps get identical downstream bodies, with the Redis store", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ cacheEnv: { MIRROR_CACHE_STORE: "redis", REDIS_URL: inject("redisUrl") } });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("for every request id, mirror before or after its test request", async () => {
    const steps: Step[] = [5, -30, 0, 15].map((d, i) => ({ kind: "pair", requestId: newRequestId(`redis-${i}`), mirrorDelayMs: d }));
    const results = await runSteps(sb, steps, 4);
    for (const r of results) {
      expect(comparable(r.mirror)).toEqual(comparable(r.test));
      for (const name of UPSTREAM_CALLS) expect(call(r.mirror!, name).xMirrorCache).toBe("hit");
    }
    expect(sb.upstream.stats.total).toBe(steps.length * UPSTREAM_CALLS.length);
  });
});
