// Timing: a mirror call arriving before its test call, while it is in flight at the upstream,
// right after it, and long after it (past the record's TTL), through the real filter (sidecars)
// and the real service child with a short TTL and wait bound. Invariants: before / during / after
// → hit with the test call's exact bytes; after the TTL, or before a test call that comes later
// than the wait bound → 504 miss; the upstream only ever sees the test call (once); the service
// counts hits, misses and wait times in /metrics.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SidecarHandle } from "../../envoy/node-sandbox/sidecar.ts";
import { MARKER, sleep, startFaultUpstream, startOutboundSidecars, startServiceProcess, viaSidecar, waitFor, type FaultUpstream, type ServiceProcess } from "./support.ts";

const WAIT_MS = 3000;
const TTL_MS = 2500;

describe("mirror timing: before, during, after, long after the test call", () => {
  let svc: ServiceProcess;
  let fault: FaultUpstream;
  let test: SidecarHandle;
  let mirror: SidecarHandle;
  beforeAll(async () => {
    fault = await startFaultUpstream();
    svc = await startServiceProcess({ MIRROR_CACHE_WAIT_MS: String(WAIT_MS), MIRROR_CACHE_TTL_MS: String(TTL_MS) });
    ({ test, mirror } = await startOutboundSidecars(svc.port));
  });
  afterAll(async () => {
    await test?.stop();
    await mirror?.stop();
    await svc?.kill("SIGTERM");
    expect(svc.exits.at(-1)).toMatchObject({ code: 0 }); // graceful exit, no crash
    await fault?.close();
  });
  const sendTest = (rid: string, path = "/ok") => viaSidecar(test.address, { authority: fault.authority, path, headers: { "x-request-id": rid } });
  const sendMirror = (rid: string, path = "/ok") => viaSidecar(mirror.address, { authority: fault.authority, path, headers: { "x-request-id": rid, [MARKER]: "mirror" } });
  const mirrorDispatched = (rid: string) => waitFor(() => mirror.records.some((r) => r.requestId === rid && r.dispatches.length > 0), 10_000, 5);
  const upstreamCalls = (rid: string) => fault.seen.filter((s) => s.requestId === rid);

  function expectHit(t: { status: number; body: Buffer; headers: Record<string, unknown> }, m: { status: number; body: Buffer; headers: Record<string, unknown> }) {
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.status).toBe(t.status);
    expect(m.body.equals(t.body)).toBe(true);
  }

  it("before: the mirror waits for its test call and replays it", async () => {
    const rid = `rel-before-${Date.now()}`;
    const m = sendMirror(rid);
    await mirrorDispatched(rid); // the mirror call is waiting at the cache
    await sleep(100);
    const t = (await sendTest(rid))!;
    expectHit(t, (await m)!);
    expect(upstreamCalls(rid)).toHaveLength(1);
  });

  it("during: the mirror arrives while the test call is at the upstream, and gets its answer", async () => {
    const rid = `rel-during-${Date.now()}`;
    const t = sendTest(rid, "/slow?ms=600");
    expect(await waitFor(() => upstreamCalls(rid).length === 1, 10_000, 5)).toBe(true); // in flight
    const m = sendMirror(rid, "/slow?ms=600");
    expectHit((await t)!, (await m)!);
    expect(upstreamCalls(rid)).toHaveLength(1);
  });

  it("after: the mirror right after its test call gets the record", async () => {
    const rid = `rel-after-${Date.now()}`;
    const t = (await sendTest(rid))!;
    const m = (await sendMirror(rid))!;
    expectHit(t, m);
    expect(upstreamCalls(rid)).toHaveLength(1);
  });

  it("long after (past the TTL): 504 miss, and the upstream is not asked again", async () => {
    const before = (await svc.metrics())!;
    const rid = `rel-ttl-${Date.now()}`;
    const t = (await sendTest(rid))!;
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    await sleep(TTL_MS + 500);
    const m = (await sendMirror(rid))!;
    expect(m.status).toBe(504);
    expect(m.headers["x-mirror-cache"]).toBe("miss");
    expect(JSON.parse(m.text)).toMatchObject({ code: "MIRROR_CACHE_MISS" });
    expect(upstreamCalls(rid)).toHaveLength(1);
    const after = (await svc.metrics())!;
    expect(after.calls("mirror", "miss") - before.calls("mirror", "miss")).toBe(1);
  });

  it("before, by more than the wait bound: the mirror misses, the late test call is still served and recorded", async () => {
    const rid = `rel-toolate-${Date.now()}`;
    const m = (await sendMirror(rid))!; // waits WAIT_MS, then misses
    expect(m.status).toBe(504);
    expect(m.headers["x-mirror-cache"]).toBe("miss");
    const t = (await sendTest(rid))!;
    expect(t.status).toBe(200);
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    expect(upstreamCalls(rid)).toHaveLength(1);
  });

  it("the whole time: no mirror call on the upstream, hits and waits counted, filters healthy", async () => {
    expect(fault.markerCount("mirror")).toBe(0);
    expect(fault.stackCount("mirror")).toBe(0);
    expect(mirror.stats.forwards[fault.authority] ?? 0).toBe(0);
    expect(mirror.counter("mesh_mirror.failed_open")).toBe(0);
    expect(test.stats.errors).toEqual([]);
    expect(mirror.stats.errors).toEqual([]);
    const m = (await svc.metrics())!;
    expect(m.calls("mirror", "hit")).toBeGreaterThanOrEqual(3);
    expect(m.calls("mirror", "miss")).toBeGreaterThanOrEqual(2);
    expect(m.get("mirror_cache_wait_seconds_count")).toBeGreaterThanOrEqual(5);
    expect((await svc.readyz())!.status).toBe(200);
  });
});
