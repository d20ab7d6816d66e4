import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../service/store/memory.ts";
import { StoreUnavailableError, type CacheStore } from "../../service/store/types.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("probes-and-metrics", () => {
  let up: Upstream;
  let svc: Service;
  let down: Service;
  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(`upstream ${req.url}`));
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "50" });
    const broken: CacheStore = Object.assign(Object.create(createMemoryStore({ maxBytes: 1 << 20 })) as CacheStore, {
      ping: () => Promise.reject(new StoreUnavailableError("connection refused")),
    });
    down = await startService({}, { store: broken });
  });
  afterAll(async () => {
    await svc.close();
    await down.close();
    await up.close();
  });

  it("/healthz answers 200 without a stack header", async () => {
    const a = await send(svc.port, { path: "/healthz" });
    expect(a.status).toBe(200);
    expect(a.json()).toEqual({ status: "ok" });
  });

  it("/readyz is 200 when the store answers, 503 with a JSON reason when it does not", async () => {
    const ok = await send(svc.port, { path: "/readyz" });
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ status: "ready", store: "memory" });
    const bad = await send(down.port, { path: "/readyz" });
    expect(bad.status).toBe(503);
    expect(bad.json().code).toBe("STORE_UNAVAILABLE");
    expect(bad.json().message).toContain("connection refused");
    // liveness does not depend on the store
    expect((await send(down.port, { path: "/healthz" })).status).toBe(200);
  });

  it("a probe path WITH a stack header is a call like any other", async () => {
    const a = await send(svc.port, { path: "/healthz", host: up.authority, stack: "test", rid: rid() });
    expect(a.headers["x-mirror-cache"]).toBe("pass");
    expect(a.text).toBe("upstream /healthz");
  });

  it("/metrics exposes calls by stack and outcome, wait and upstream histograms, store gauges and counters", async () => {
    const id = rid();
    await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/m" });
    await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/m" });
    await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/m" }); // miss
    await send(svc.port, { host: up.authority, stack: "bogus", rid: id, path: "/m" }); // invalid
    const a = await send(svc.port, { path: "/metrics" });
    expect(a.status).toBe(200);
    expect(a.headers["content-type"]).toMatch(/^text\/plain/);
    const t = a.text;
    expect(t).toMatch(/mirror_cache_calls_total\{stack="test",outcome="pass"\} [1-9]/);
    expect(t).toMatch(/mirror_cache_calls_total\{stack="mirror",outcome="hit"\} 1/);
    expect(t).toMatch(/mirror_cache_calls_total\{stack="mirror",outcome="miss"\} 1/);
    expect(t).toMatch(/mirror_cache_calls_total\{stack="none",outcome="invalid"\} 1/);
    expect(t).toMatch(/mirror_cache_wait_seconds_count 2/);
    expect(t).toMatch(/mirror_cache_upstream_seconds_count [1-9]/);
    expect(t).toMatch(/mirror_cache_store_entries [1-9]/);
    expect(t).toMatch(/mirror_cache_store_bytes [1-9]\d*/);
    expect(t).toMatch(/mirror_cache_egress_denied_total 0/);
    expect(t).toMatch(/mirror_cache_store_errors_total 0/);
  });

  it("each app has its own registry", async () => {
    const t = await (await send(down.port, { path: "/metrics" })).text;
    expect(t).not.toMatch(/outcome="hit"/);
  });
});
