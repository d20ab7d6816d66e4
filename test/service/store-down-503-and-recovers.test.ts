import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../../service/store/redis.ts";
import { startRedis, type RedisServer } from "../support/redis-server.ts";
import { rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

async function until(fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error("condition not met in time");
}

describe("store-down-503-and-recovers", () => {
  let redis: RedisServer;
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    redis = await startRedis();
    up = await startUpstream((req, res) => res.end(`upstream ${req.url}`));
    svc = await startService({ MIRROR_CACHE_STORE: "redis", REDIS_URL: redis.url, MIRROR_CACHE_WAIT_MS: "1000" }, { store: createRedisStore({ url: redis.url, keyPrefix: `t${process.pid}:` }) });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
    await redis.destroy();
  });

  it("serves test and mirror calls while Redis is up", async () => {
    const id = rid();
    const t = await send(svc.port, { host: up.authority, stack: "test", rid: id });
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect((await send(svc.port, { path: "/readyz" })).status).toBe(200);
  });

  it("Redis down: calls get 503 STORE_UNAVAILABLE without x-mirror-cache, /readyz 503, /healthz 200, nothing crashes; back up: recovers", async () => {
    await redis.stop(true);
    const seenBefore = up.seen.length;
    for (const stack of ["test", "mirror"]) {
      const a = await send(svc.port, { host: up.authority, stack, rid: rid() });
      expect(a.status, stack).toBe(503);
      expect(a.headers["x-mirror-cache"]).toBeUndefined();
      expect(a.json().code).toBe("STORE_UNAVAILABLE");
    }
    expect(up.seen.length).toBe(seenBefore);
    const r = await send(svc.port, { path: "/readyz" });
    expect(r.status).toBe(503);
    expect(r.json().code).toBe("STORE_UNAVAILABLE");
    expect((await send(svc.port, { path: "/healthz" })).status).toBe(200);
    const metrics = (await send(svc.port, { path: "/metrics" })).text;
    expect(metrics).toMatch(/mirror_cache_store_errors_total [1-9]/);
    expect(metrics).toMatch(/outcome="store_unavailable"\} 1/);

    await redis.start();
    await until(async () => (await send(svc.port, { path: "/readyz" })).status === 200);
    const id = rid();
    const t = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/after" });
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/after" });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe("upstream /after");
  });

  it("two service instances on one Redis: a test call through one pairs with a mirror call through the other", async () => {
    const url = inject("redisUrl");
    const prefix = `two${process.pid}:`;
    const a = await startService({ MIRROR_CACHE_STORE: "redis", REDIS_URL: url }, { store: createRedisStore({ url, keyPrefix: prefix }) });
    const b = await startService({ MIRROR_CACHE_STORE: "redis", REDIS_URL: url, MIRROR_CACHE_WAIT_MS: "5000" }, { store: createRedisStore({ url, keyPrefix: prefix }) });
    try {
      const id = rid();
      // mirror first, on b (waits across replicas), then the test call on a
      const mirror = send(b.port, { host: up.authority, stack: "mirror", rid: id, path: "/shared" });
      await sleep(150);
      const t = await send(a.port, { host: up.authority, stack: "test", rid: id, path: "/shared" });
      const m = await mirror;
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(m.body.equals(t.body)).toBe(true);
      // the counter is shared: the second test call on b pairs with the second mirror call on a
      const t2 = await send(b.port, { host: up.authority, stack: "test", rid: id, path: "/shared" });
      const m2 = await send(a.port, { host: up.authority, stack: "mirror", rid: id, path: "/shared" });
      expect(m2.headers["x-mirror-cache"]).toBe("hit");
      expect(m2.body.equals(t2.body)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
