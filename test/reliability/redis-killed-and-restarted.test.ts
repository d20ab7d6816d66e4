// Fault: the service runs on the Redis store, and Redis is SIGKILLed mid-traffic, then restarted on
// the same port (empty: no persistence). Invariants: the service process stays up, reports the
// outage (/readyz 503 STORE_UNAVAILABLE, store errors and store_unavailable outcomes in /metrics),
// answers calls 503 without x-mirror-cache so the test filter fails open (test calls served by the
// upstream) and the mirror filter refuses; no mirror call reaches the upstream; when Redis is back
// the service recovers by itself (ready, pass/hit pairs again).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSandbox, type Sandbox } from "../../envoy/node-sandbox/sandbox.ts";
import { startRedis, type RedisServer } from "../support/redis-server.ts";
import { http, MARKER, MiB, parseMetrics, startFaultUpstream, viaSidecar, waitFor, type FaultUpstream } from "./support.ts";
import { mirrorReachedUpstream, pairViolations, startTraffic, upstreamExplainedByTestCalls } from "./traffic.ts";

describe("redis killed and restarted", () => {
  let redis: RedisServer;
  let sb: Sandbox;
  let fault: FaultUpstream;
  const cachePort = () => Number(sb.cache.address.split(":")[1]);
  const readyz = () => http(cachePort(), { target: "/readyz", timeoutMs: 5000 });
  const metrics = async () => parseMetrics((await sb.cache.metrics())!);

  beforeAll(async () => {
    redis = await startRedis();
    sb = await startSandbox({ cacheWaitMs: 2000, cacheEnv: { MIRROR_CACHE_STORE: "redis", REDIS_URL: redis.url } });
    fault = await startFaultUpstream();
  });
  afterAll(async () => {
    await fault?.close();
    await sb?.stop();
    await redis?.destroy();
  });

  it("mid-traffic: test calls all answered, mirror never on the upstream, outage reported, recovery by itself", async () => {
    expect((await readyz())!.status).toBe(200);
    const rss0 = (await metrics()).get("process_resident_memory_bytes");
    const traffic = startTraffic(sb, { workers: 3, label: "redis" });
    let downReady: { status: number; body: string } | undefined;
    let downMetrics: ReturnType<typeof parseMetrics> | undefined;
    try {
      traffic.phase = "up";
      expect(await waitFor(() => traffic.done("up") >= 6, 60_000)).toBe(true);
      traffic.phase = "killing";
      await redis.stop(true);
      traffic.phase = "down";
      expect(await waitFor(() => traffic.done("down") >= 6, 60_000)).toBe(true);
      const r = await readyz();
      downReady = r && { status: r.status, body: r.text };
      downMetrics = await metrics();
      expect(sb.cache.running).toBe(true); // the service did not crash
      traffic.phase = "restarting";
      await redis.start();
      expect(await waitFor(async () => (await readyz())?.status === 200, 30_000, 100)).toBe(true);
      traffic.phase = "back";
      expect(await waitFor(() => traffic.done("back") >= 6, 60_000)).toBe(true);
    } finally {
      await traffic.stop();
    }

    // reported while down
    expect(downReady!.status).toBe(503);
    expect(JSON.parse(downReady!.body)).toMatchObject({ code: "STORE_UNAVAILABLE" });
    expect(downMetrics!.get("mirror_cache_store_errors_total")).toBeGreaterThan(0);
    expect(downMetrics!.calls("test", "store_unavailable") + downMetrics!.calls("mirror", "store_unavailable")).toBeGreaterThan(0);

    expect(pairViolations(traffic.results)).toEqual([]);
    expect(mirrorReachedUpstream(sb)).toEqual([]);
    expect(upstreamExplainedByTestCalls(sb)).toEqual([]);
    expect(sb.sidecars.test.stats.errors).toEqual([]);
    expect(sb.sidecars.mirror.stats.errors).toEqual([]);
    // while down, test calls were served by the upstream (fail-open), the mirror was refused; a pair
    // that started while down but ran into the restart may legitimately see pass/hit, so only pairs
    // that began and ended while Redis was down are held to this
    const down = traffic.results.filter((r) => r.phase === "down" && r.endPhase === "down");
    expect(down.length).toBeGreaterThanOrEqual(6);
    for (const r of down) for (const o of r.test.summary!.observed) expect(o.xMirrorCache).toBeNull();
    for (const r of down) for (const [i, o] of r.mirror.summary!.observed.entries()) if (o.call !== "metadata") expect(r.mirror.summary!.downstream[i].status).toBe(503);
    // back: pairs are recorded and replayed again
    const back = traffic.results.filter((r) => r.phase === "back").slice(-3);
    for (const r of back) for (const o of r.mirror.summary!.observed) if (o.call !== "metadata") expect(o.xMirrorCache).toBe("hit");

    const m = await metrics();
    expect(sb.cache.running).toBe(true);
    expect(m.get("mirror_cache_calls_total", { outcome: "internal_error" })).toBe(0);
    expect(m.get("process_resident_memory_bytes")).toBeLessThan(Math.max(rss0 * 3, 400 * MiB));
  }, 240_000);

  it("a mirror waiting for its test call when Redis dies is answered (miss or unavailable), never forwarded; the test call is served", async () => {
    const rid = `rel-redis-wait-${Date.now()}`;
    const mirror = viaSidecar(sb.sidecars.mirror.address, { authority: fault.authority, path: "/ok", headers: { "x-request-id": rid, [MARKER]: "mirror" } });
    expect(await waitFor(() => sb.sidecars.mirror.records.some((r) => r.requestId === rid && r.dispatches.length > 0), 10_000, 10)).toBe(true);
    await redis.stop(true);
    const test = await viaSidecar(sb.sidecars.test.address, { authority: fault.authority, path: "/ok", headers: { "x-request-id": rid } });
    const m = await mirror;
    expect(test!.status).toBe(200);
    expect([503, 504]).toContain(m!.status);
    expect(["unavailable", "miss"]).toContain(m!.headers["x-mirror-cache"]);
    expect(fault.markerCount("mirror")).toBe(0);
    expect(fault.seen.filter((s) => s.requestId === rid).length).toBe(1); // the test call, fail-open
    expect(sb.cache.running).toBe(true);

    await redis.start();
    expect(await waitFor(async () => (await readyz())?.status === 200, 30_000, 100)).toBe(true);
    const rid2 = `rel-redis-after-${Date.now()}`;
    const t2 = await viaSidecar(sb.sidecars.test.address, { authority: fault.authority, path: "/ok", headers: { "x-request-id": rid2 } });
    const m2 = await viaSidecar(sb.sidecars.mirror.address, { authority: fault.authority, path: "/ok", headers: { "x-request-id": rid2, [MARKER]: "mirror" } });
    expect(t2!.headers["x-mirror-cache"]).toBe("pass");
    expect(m2!.headers["x-mirror-cache"]).toBe("hit");
    expect(m2!.body.equals(t2!.body)).toBe(true);
    expect(fault.markerCount("mirror")).toBe(0);
  }, 120_000);
});
