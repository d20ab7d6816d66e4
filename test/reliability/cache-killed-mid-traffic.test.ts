// Fault: the mirror-cache process is SIGKILLed while paired traffic flows through the e2e
// sandbox (real filter in the emulator, real service child process), then restarted on the same
// port. Invariants: every test-stack call answered (by the cache, or fail-open by the upstream);
// no mirror call reaches the upstream (mirror refused 503 unavailable, or 504 miss after the
// restart since the memory records died with the process); the restarted service is ready and
// counts again; nothing else crashed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSandbox, type Sandbox } from "../../envoy/node-sandbox/sandbox.ts";
import { http, MARKER, MiB, parseMetrics, startFaultUpstream, startOutboundSidecars, startServiceProcess, viaSidecar, waitFor, type FaultUpstream } from "./support.ts";
import { mirrorReachedUpstream, pairViolations, startTraffic, upstreamExplainedByTestCalls } from "./traffic.ts";

async function metricsOf(sb: Sandbox) {
  const t = await sb.cache.metrics();
  return t === undefined ? undefined : parseMetrics(t);
}

describe("cache killed mid-traffic", () => {
  let sb: Sandbox;
  let fault: FaultUpstream;
  beforeAll(async () => {
    sb = await startSandbox({ cacheWaitMs: 2000 });
    fault = await startFaultUpstream();
  });
  afterAll(async () => {
    await fault?.close();
    await sb?.stop();
  });

  it("SIGKILL and restart on the same port while pairs flow: test calls all answered, mirror never on the upstream", async () => {
    const rssBefore = (await metricsOf(sb))!.get("process_resident_memory_bytes");
    const traffic = startTraffic(sb, { workers: 3, label: "kill" });
    try {
      traffic.phase = "up";
      expect(await waitFor(() => traffic.done("up") >= 6, 60_000)).toBe(true);
      traffic.phase = "killing";
      await sb.cache.stop(true); // SIGKILL: in-flight dispatches are reset
      expect(sb.cache.running).toBe(false);
      traffic.phase = "down";
      expect(await waitFor(() => traffic.done("down") >= 6, 60_000)).toBe(true);
      traffic.phase = "restarting";
      await sb.cache.start(); // same port, fresh process (memory store empty)
      traffic.phase = "back";
      expect(await waitFor(() => traffic.done("back") >= 6, 60_000)).toBe(true);
    } finally {
      await traffic.stop();
    }

    expect(pairViolations(traffic.results)).toEqual([]);
    expect(mirrorReachedUpstream(sb)).toEqual([]);
    expect(upstreamExplainedByTestCalls(sb)).toEqual([]);
    expect(sb.sidecars.test.stats.errors).toEqual([]);
    expect(sb.sidecars.mirror.stats.errors).toEqual([]);

    // While it was down: the test filter failed open, the mirror filter refused.
    expect(sb.sidecars.test.counter("mesh_mirror.failed_open")).toBeGreaterThan(0);
    expect(sb.sidecars.mirror.counter("mesh_mirror.refused")).toBeGreaterThan(0);
    // (only pairs that began and ended while it was down: one that ran into the restart may see pass)
    const down = traffic.results.filter((x) => x.phase === "down" && x.endPhase === "down");
    expect(down.length).toBeGreaterThanOrEqual(6);
    for (const r of down) {
      for (const d of r.test.summary!.observed) expect(d.xMirrorCache).toBeNull(); // served by the upstream itself
    }
    // After the restart pairs are served by the cache again: pass and byte-identical hits.
    const back = traffic.results.filter((x) => x.phase === "back");
    const hits = back.flatMap((r) => r.mirror.summary!.observed).filter((o) => o.xMirrorCache === "hit").length;
    expect(hits).toBeGreaterThan(0);

    // The restarted service: alive, ready, counting, memory bounded.
    expect(sb.cache.running).toBe(true);
    expect((await http(Number(sb.cache.address.split(":")[1]), { target: "/readyz" }))!.status).toBe(200);
    const m = (await metricsOf(sb))!;
    expect(m.calls("test", "pass")).toBeGreaterThan(0);
    expect(m.get("mirror_cache_calls_total", { outcome: "internal_error" })).toBe(0);
    expect(m.get("process_resident_memory_bytes")).toBeLessThan(Math.max(rssBefore * 3, 400 * MiB));
  }, 180_000);

  it("a kill while a test call is in flight at the cache: the sidecar sees a reset, fails open, the upstream answers; the waiting mirror is refused", async () => {
    const rid = `rel-inflight-${Date.now()}`;
    const test = viaSidecar(sb.sidecars.test.address, { authority: fault.authority, path: "/slow?ms=1500", headers: { "x-request-id": rid } });
    // the cache forwarded it: the upstream is answering it now
    expect(await waitFor(() => fault.seen.some((s) => s.requestId === rid), 30_000, 10)).toBe(true);
    const mirror = viaSidecar(sb.sidecars.mirror.address, { authority: fault.authority, path: "/slow?ms=1500", headers: { "x-request-id": rid, [MARKER]: "mirror" } });
    await waitFor(() => (sb.sidecars.mirror.records.some((r) => r.requestId === rid && r.dispatches.length > 0)), 10_000, 10);
    await sb.cache.stop(true);
    const [t, m] = await Promise.all([test, mirror]);
    expect(t!.status).toBe(200);
    expect(t!.headers["x-mirror-cache"]).toBeUndefined(); // from the upstream, not the cache
    expect(m!.status).toBe(503);
    expect(m!.headers["x-mirror-cache"]).toBe("unavailable");
    // once through the dead cache, once fail-open; never from the mirror
    expect(fault.seen.filter((s) => s.requestId === rid).length).toBe(2);
    expect(fault.markerCount("mirror")).toBe(0);
    const rec = sb.sidecars.test.records.find((r) => r.requestId === rid)!;
    expect(rec.outcome).toBe("fail-open");
    expect(rec.dispatches.map((d) => d.result)).toEqual(["reset"]);

    await sb.cache.start();
    expect((await metricsOf(sb))).toBeDefined();
  }, 120_000);
  it("SIGTERM mid-traffic (a rolling restart): in-flight calls drain and are answered, later ones fail open / are refused, exit 0, restart on the same port", async () => {
    const svc = await startServiceProcess({ MIRROR_CACHE_WAIT_MS: "2000", MIRROR_CACHE_SHUTDOWN_TIMEOUT_MS: "10000" });
    const { test, mirror } = await startOutboundSidecars(svc.port);
    let sigtermSent = false;
    const results: Array<{ rid: string; phase: string; endPhase: string; afterSigterm: boolean; t: { status: number; cache?: string; body: Buffer }; m: { status: number; cache?: string; body: Buffer } }> = [];
    let phase = "up";
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const rid = `rel-term-${w}-${i}-${Date.now()}`;
        const ph = phase;
        const tp = viaSidecar(test.address, { authority: fault.authority, path: "/slow?ms=300", headers: { "x-request-id": rid } });
        await new Promise((r) => setTimeout(r, 20));
        const mp = viaSidecar(mirror.address, { authority: fault.authority, path: "/slow?ms=300", headers: { "x-request-id": rid, [MARKER]: "mirror" } });
        const [t, m] = await Promise.all([tp, mp]);
        results.push({ rid, phase: ph, endPhase: phase, afterSigterm: sigtermSent, t: { status: t!.status, cache: t!.headers["x-mirror-cache"] as string | undefined, body: t!.body }, m: { status: m!.status, cache: m!.headers["x-mirror-cache"] as string | undefined, body: m!.body } });
      }
    };
    const workers = [0, 1, 2].map(worker);
    try {
      expect(await waitFor(() => results.length >= 6, 30_000)).toBe(true);
      await waitFor(() => fault.inFlight > 0, 5_000, 5); // calls are in flight at the cache
      phase = "terminating";
      sigtermSent = true;
      await svc.kill("SIGTERM");
      phase = "down";
      expect(await waitFor(() => results.filter((r) => r.phase === "down").length >= 6, 30_000)).toBe(true);
      phase = "restarting";
      await svc.start();
      phase = "back";
      expect(await waitFor(() => results.filter((r) => r.phase === "back").length >= 3, 30_000)).toBe(true);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    expect(svc.exits).toEqual([{ code: 0, signal: null, killedByTest: true }]); // graceful, not a crash
    for (const r of results) {
      expect(r.t.status, `${r.phase} ${r.rid}`).toBe(200); // every test call answered
      if (r.m.cache === "hit") expect(r.m.body.equals(r.t.body)).toBe(true);
      else expect([[503, "unavailable"], [504, "miss"]]).toContainEqual([r.m.status, r.m.cache]);
    }
    const down = results.filter((r) => r.phase === "down" && r.endPhase === "down");
    expect(down.length).toBeGreaterThanOrEqual(6);
    expect(down.every((r) => r.t.cache === undefined)).toBe(true); // failed open
    // calls in flight at the SIGTERM were drained: answered by the cache after the signal
    expect(results.some((r) => r.phase === "up" && r.afterSigterm && r.t.cache === "pass")).toBe(true);
    expect(results.filter((r) => r.phase === "back").some((r) => r.m.cache === "hit")).toBe(true);
    expect(fault.markerCount("mirror")).toBe(0);
    expect(mirror.stats.forwards[fault.authority] ?? 0).toBe(0);
    expect(mirror.counter("mesh_mirror.failed_open")).toBe(0);
    expect(test.stats.errors).toEqual([]);
    expect(mirror.stats.errors).toEqual([]);
    expect((await svc.readyz())!.status).toBe(200);
    await test.stop();
    await mirror.stop();
    await svc.kill("SIGKILL");
  }, 180_000);
});
