import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memoryStoreDebug } from "../../service/store/memory.ts";
import { rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";
import { request as httpRequest } from "node:http";

describe("mirror-waits-for-late-test-call", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      const delay = Number(new URL(req.url!, "http://x").searchParams.get("delay") ?? 0);
      setTimeout(() => res.end(`answer for ${req.url}`), delay);
    });
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "10000" });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("a mirror call that arrives first is answered when the test call is recorded", async () => {
    const id = rid();
    const mirror = send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/late" });
    await sleep(200);
    const test = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/late" });
    const m = await mirror;
    expect(test.headers["x-mirror-cache"]).toBe("pass");
    expect(m.status).toBe(200);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.body.equals(test.body)).toBe(true);
  });

  it("a mirror call while the test call is in flight waits for its record", async () => {
    const id = rid();
    const test = send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/slow?delay=300" });
    await sleep(50);
    const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/slow?delay=300" });
    const t = await test;
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe("answer for /slow?delay=300");
    expect(m.body.equals(t.body)).toBe(true);
    expect(up.seen.filter((s) => s.url === "/slow?delay=300")).toHaveLength(1);
  });

  it("a waiting mirror client that goes away leaves no waiter behind and crashes nothing", async () => {
    const id = rid();
    await new Promise<void>((resolve) => {
      const req = httpRequest({ host: "127.0.0.1", port: svc.port, path: "/gone", headers: { host: up.authority, "x-mirror-stack": "mirror", "x-request-id": id }, agent: false });
      req.on("error", () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    for (let i = 0; i < 50 && memoryStoreDebug(svc.store).waiters > 0; i++) await sleep(20);
    expect(memoryStoreDebug(svc.store).waiters).toBe(0);
    const h = await send(svc.port, { path: "/healthz" });
    expect(h.status).toBe(200);
  });
});
