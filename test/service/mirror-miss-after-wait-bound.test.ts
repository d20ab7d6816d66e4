import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("mirror-miss-after-wait-bound", () => {
  let up: Upstream;
  let svc: Service;
  let zero: Service;
  beforeAll(async () => {
    up = await startUpstream();
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "300" });
    zero = await startService({ MIRROR_CACHE_WAIT_MS: "0" });
  });
  afterAll(async () => {
    await svc.close();
    await zero.close();
    await up.close();
  });

  it("answers 504 miss with MIRROR_CACHE_MISS once the wait bound has passed", async () => {
    const t0 = performance.now();
    const a = await send(svc.port, { host: up.authority, stack: "mirror", rid: rid(), path: "/never" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(a.status).toBe(504);
    expect(a.headers["x-mirror-cache"]).toBe("miss");
    expect(a.headers["content-type"]).toBe("application/json");
    const j = a.json();
    expect(j.code).toBe("MIRROR_CACHE_MISS");
    expect(j.message).toContain("300 ms");
    expect(up.seen).toHaveLength(0);
  });

  it("with MIRROR_CACHE_WAIT_MS=0 a mirror call without a record misses at once", async () => {
    const a = await send(zero.port, { host: up.authority, stack: "mirror", rid: rid() });
    expect(a.status).toBe(504);
    expect(a.headers["x-mirror-cache"]).toBe("miss");
  });

  it("a test call recorded after the bound does not resurrect the missed mirror call, but pairs with the next one", async () => {
    const id = rid();
    const miss = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/p" });
    expect(miss.status).toBe(504);
    // test call n=0 arrives late; the mirror's n=0 was spent on the miss
    await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/p" });
    await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/p" });
    const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/p" });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
  });
});
