// Fault: the real upstream is slow beyond the service's timeouts (headers, body), resets the
// connection (before the answer, mid-body), refuses connections, or answers 5xx. Driven through
// the e2e sidecars (real filter) to the real service child. Invariants: the test call is answered
// (the recorded failure, or the upstream's own 5xx, with x-mirror-cache: pass), the mirror gets the
// same bytes from the record (hit) and never reaches the upstream (counted by marker and stack
// header), the upstream saw each test call once, the service stays ready, counts the outcome in
// /metrics, and its memory stays bounded. Then a cache slower than the filter's own timeout_ms:
// the test filter fails open, the mirror filter refuses.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CACHE_CLUSTER, startSandbox, type Sandbox } from "../../envoy/node-sandbox/sandbox.ts";
import { startSidecar, type SidecarHandle } from "../../envoy/node-sandbox/sidecar.ts";
import { MARKER, MiB, parseMetrics, startFaultUpstream, viaSidecar, http, type FaultUpstream } from "./support.ts";

const UPSTREAM_TIMEOUT_MS = 600;

describe("upstream faults are recorded, answered and replayed", () => {
  let sb: Sandbox;
  let fault: FaultUpstream;
  let closedPort: number;
  beforeAll(async () => {
    sb = await startSandbox({ cacheWaitMs: 3000, cacheEnv: { MIRROR_CACHE_UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS), MIRROR_CACHE_CONNECT_TIMEOUT_MS: "1000" } });
    fault = await startFaultUpstream();
    const gone = await startFaultUpstream();
    closedPort = gone.port;
    await gone.close(); // nothing listens there any more: connection refused
  });
  afterAll(async () => {
    await fault?.close();
    await sb?.stop();
  });
  const metrics = async () => parseMetrics((await sb.cache.metrics())!);

  const cases: Array<{ name: string; path: string; authority?: () => string; status: number; code?: string; outcome: string }> = [
    { name: "slow headers beyond the upstream timeout", path: `/slow?ms=${UPSTREAM_TIMEOUT_MS * 4}`, status: 504, code: "UPSTREAM_TIMEOUT", outcome: "upstream_timeout" },
    { name: "a body that stalls beyond the upstream timeout", path: `/slow-body?ms=${UPSTREAM_TIMEOUT_MS * 4}`, status: 504, code: "UPSTREAM_TIMEOUT", outcome: "upstream_timeout" },
    { name: "a connection reset before the answer (socket.destroy)", path: "/reset", status: 502, code: "UPSTREAM_UNAVAILABLE", outcome: "upstream_unavailable" },
    { name: "a connection reset mid-body", path: "/reset-mid-body", status: 502, code: "UPSTREAM_UNAVAILABLE", outcome: "upstream_unavailable" },
    { name: "a refused connection", path: "/ok", authority: () => `127.0.0.1:${closedPort}`, status: 502, code: "UPSTREAM_UNAVAILABLE", outcome: "upstream_unavailable" },
    { name: "the upstream's own 500", path: "/status/500", status: 500, outcome: "pass" },
    { name: "the upstream's own 503 with Retry-After", path: "/status/503", status: 503, outcome: "pass" },
  ];

  for (const c of cases) {
    it(`${c.name}: test answered ${c.status}${c.code ? ` ${c.code}` : ""}, mirror replays the same bytes, upstream once`, async () => {
      const authority = c.authority?.() ?? fault.authority;
      const rid = `rel-up-${c.outcome}-${Math.random().toString(36).slice(2)}`;
      const before = await metrics();
      const seenBefore = fault.seen.length;
      const t = (await viaSidecar(sb.sidecars.test.address, { authority, path: c.path, headers: { "x-request-id": rid } }))!;
      const m = (await viaSidecar(sb.sidecars.mirror.address, { authority, path: c.path, headers: { "x-request-id": rid, [MARKER]: "mirror" } }))!;
      expect(t.status).toBe(c.status);
      expect(t.headers["x-mirror-cache"]).toBe("pass");
      if (c.code) expect(JSON.parse(t.text)).toMatchObject({ code: c.code });
      if (c.status === 503) expect(t.headers["retry-after"]).toBe("7");
      expect(m.status).toBe(c.status);
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(m.body.equals(t.body)).toBe(true);
      // the upstream: the test call once (none for a refused connection), never the mirror
      expect(fault.seen.length - seenBefore).toBe(c.authority ? 0 : 1);
      expect(fault.markerCount("mirror")).toBe(0);
      expect(fault.stackCount("mirror")).toBe(0);
      const after = await metrics();
      expect(after.calls("test", c.outcome) - before.calls("test", c.outcome)).toBe(1);
      expect(after.calls("mirror", "hit") - before.calls("mirror", "hit")).toBe(1);
    }, 60_000);
  }

  it("a burst of faulty calls: the service stays ready, nothing crashes, memory stays bounded", async () => {
    const before = await metrics();
    const rss0 = before.get("process_resident_memory_bytes");
    const paths = ["/reset", "/status/502", "/reset-mid-body", `/slow?ms=${UPSTREAM_TIMEOUT_MS * 2}`];
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const rid = `rel-burst-${round}-${i}-${Date.now()}`;
          const path = paths[i % paths.length];
          const t = await viaSidecar(sb.sidecars.test.address, { authority: fault.authority, path, headers: { "x-request-id": rid } });
          const m = await viaSidecar(sb.sidecars.mirror.address, { authority: fault.authority, path, headers: { "x-request-id": rid, [MARKER]: "mirror" } });
          expect(t!.headers["x-mirror-cache"]).toBe("pass");
          expect(m!.headers["x-mirror-cache"]).toBe("hit");
          expect(m!.body.equals(t!.body)).toBe(true);
        }),
      );
    }
    const after = await metrics();
    expect(sb.cache.running).toBe(true);
    expect((await http(Number(sb.cache.address.split(":")[1]), { target: "/readyz" }))!.status).toBe(200);
    expect(after.get("mirror_cache_calls_total", { outcome: "internal_error" })).toBe(0);
    expect(after.calls("test", "upstream_unavailable") - before.calls("test", "upstream_unavailable")).toBe(40);
    expect(after.calls("test", "upstream_timeout") - before.calls("test", "upstream_timeout")).toBe(20);
    expect(after.get("process_resident_memory_bytes")).toBeLessThan(Math.max(rss0 * 2, rss0 + 200 * MiB));
    expect(fault.markerCount("mirror")).toBe(0);
    expect(sb.sidecars.test.stats.errors).toEqual([]);
    expect(sb.sidecars.mirror.stats.errors).toEqual([]);
  }, 120_000);

  describe("a cache slower than the filter's timeout_ms", () => {
    let test: SidecarHandle;
    let mirror: SidecarHandle;
    beforeAll(async () => {
      const common = { wasm: sb.wasmPath, clusters: { [CACHE_CLUSTER]: sb.cache.address }, routes: {} };
      test = await startSidecar({ ...common, name: "test-short", direction: "outbound", filterConfig: { stack: "test", cache_cluster: CACHE_CLUSTER, timeout_ms: 200 } });
      mirror = await startSidecar({ ...common, name: "mirror-short", direction: "outbound", filterConfig: { stack: "mirror", cache_cluster: CACHE_CLUSTER, timeout_ms: 200 } });
    });
    afterAll(async () => {
      await test?.stop();
      await mirror?.stop();
    });

    it("test fails open to the upstream (served), mirror is refused 503 unavailable, the upstream never sees the mirror", async () => {
      const rid = `rel-slowcache-${Date.now()}`;
      const seenBefore = fault.seen.length;
      // the cache forwards and waits for the upstream (400 ms) longer than the filter waits (200 ms)
      const [t, m] = await Promise.all([
        viaSidecar(test.address, { authority: fault.authority, path: "/slow?ms=400", headers: { "x-request-id": rid } }),
        viaSidecar(mirror.address, { authority: fault.authority, path: "/slow?ms=400", headers: { "x-request-id": rid, [MARKER]: "mirror" } }),
      ]);
      expect(t!.status).toBe(200);
      expect(t!.headers["x-mirror-cache"]).toBeUndefined(); // the upstream's own answer
      expect(m!.status).toBe(503);
      expect(m!.headers["x-mirror-cache"]).toBe("unavailable");
      expect(test.records.find((r) => r.requestId === rid)!.outcome).toBe("fail-open");
      expect(test.records.find((r) => r.requestId === rid)!.dispatches[0].result).toBe("timeout");
      // the cache's forward + the fail-open continuation; the mirror: never
      expect(fault.seen.length - seenBefore).toBe(2);
      expect(fault.seen.slice(seenBefore).every((s) => s.marker === undefined)).toBe(true);
      expect(mirror.stats.forwards[fault.authority] ?? 0).toBe(0);
      expect(test.counter("mesh_mirror.failed_open")).toBe(1);
      expect(mirror.counter("mesh_mirror.failed_open")).toBe(0);
    }, 60_000);
  });
});
