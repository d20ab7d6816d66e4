// Fault: the memory store at its byte budget (MIRROR_CACHE_MAX_BYTES = 64 KiB) under many records,
// one record larger than the whole budget, and a flood of distinct mirror tuples (sequence
// counters). Invariants: the store's bytes stay within the budget (/metrics), the process's RSS
// stays bounded, test calls are answered in full whatever the store keeps, recent pairs still hit
// with identical bytes, evicted or unstorable records are a 504 miss — never a forward — and the
// service stays ready.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http, MARKER, MiB, startFaultUpstream, startServiceProcess, type FaultUpstream, type ServiceProcess } from "./support.ts";

const BUDGET = 64 * 1024;
const BODY = 4 * 1024;

describe("cache at its byte budget", () => {
  let svc: ServiceProcess;
  let fault: FaultUpstream;
  beforeAll(async () => {
    fault = await startFaultUpstream();
    svc = await startServiceProcess({ MIRROR_CACHE_MAX_BYTES: String(BUDGET), MIRROR_CACHE_WAIT_MS: "200" });
  });
  afterAll(async () => {
    await svc?.kill("SIGTERM");
    expect(svc.exits).toEqual([{ code: 0, signal: null, killedByTest: true }]); // never crashed; graceful exit
    await fault?.close();
  });
  const call = (stack: "test" | "mirror", rid: string, target: string) =>
    http(svc.port, { target, headers: { host: fault.authority, "x-mirror-stack": stack, "x-request-id": rid, ...(stack === "mirror" ? { [MARKER]: "mirror" } : {}) } }).then((r) => r!);

  it("many records over the budget: bytes within it, recent pairs hit, evicted ones miss without a forward", async () => {
    const rss0 = svc.rss()!;
    const ids: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const batchIds = Array.from({ length: 10 }, (_, i) => `rel-budget-${batch}-${i}-${Date.now()}`);
      ids.push(...batchIds);
      const answers = await Promise.all(batchIds.map((id) => call("test", id, `/bytes?n=${BODY}`)));
      for (const a of answers) {
        expect(a.status).toBe(200);
        expect(a.headers["x-mirror-cache"]).toBe("pass");
        expect(a.body.length).toBe(BODY); // answered in full whatever the store keeps
      }
    }
    const m = (await svc.metrics())!;
    expect(m.get("mirror_cache_store_bytes")).toBeLessThanOrEqual(BUDGET);
    expect(m.get("mirror_cache_store_entries")).toBeLessThanOrEqual(BUDGET / BODY);
    expect(m.get("mirror_cache_store_entries")).toBeGreaterThan(0);

    // the most recent record is still there: byte-identical hit
    const last = ids.at(-1)!;
    const lastTest = fault.seen.find((s) => s.requestId === last)!;
    expect(lastTest).toBeDefined();
    const hit = await call("mirror", last, `/bytes?n=${BODY}`);
    expect(hit.headers["x-mirror-cache"]).toBe("hit");
    expect(hit.body.length).toBe(BODY);
    // the oldest were evicted: a miss, and the upstream is not asked
    for (const id of ids.slice(0, 5)) {
      const miss = await call("mirror", id, `/bytes?n=${BODY}`);
      expect(miss.status).toBe(504);
      expect(miss.headers["x-mirror-cache"]).toBe("miss");
    }
    expect(fault.markerCount("mirror")).toBe(0);
    expect(fault.seen.length).toBe(ids.length);
    expect(svc.rss()!).toBeLessThan(rss0 + 150 * MiB);
  }, 120_000);

  it("a record larger than the whole budget: the test call gets all of it, the mirror a miss, the store stays within budget", async () => {
    const rid = `rel-budget-huge-${Date.now()}`;
    const t = await call("test", rid, `/bytes?n=${4 * BUDGET}`);
    expect(t.status).toBe(200);
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    expect(t.body.length).toBe(4 * BUDGET);
    const m = await call("mirror", rid, `/bytes?n=${4 * BUDGET}`);
    expect(m.status).toBe(504);
    expect(m.headers["x-mirror-cache"]).toBe("miss");
    expect(fault.markerCount("mirror")).toBe(0);
    expect((await svc.metrics())!.get("mirror_cache_store_bytes")).toBeLessThanOrEqual(BUDGET);
  }, 60_000);

  it("a flood of distinct mirror tuples (sequence counters, no records): memory bounded, every call a miss, service ready", async () => {
    const rss0 = svc.rss()!;
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => call("mirror", `rel-flood-${batch}-${i}-${"x".repeat(200)}`, `/flood/${batch}/${i}?${"q".repeat(500)}`)),
      );
      for (const a of answers) expect(a.headers["x-mirror-cache"]).toBe("miss");
    }
    expect(fault.markerCount("mirror")).toBe(0);
    expect(svc.alive).toBe(true);
    expect((await svc.readyz())!.status).toBe(200);
    expect((await svc.metrics())!.get("mirror_cache_store_bytes")).toBeLessThanOrEqual(BUDGET);
    expect(svc.rss()!).toBeLessThan(rss0 + 150 * MiB);
  }, 120_000);
});
