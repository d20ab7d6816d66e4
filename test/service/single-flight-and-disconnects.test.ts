import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callKey, callTuple } from "../../service/key.ts";
import { rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("single-flight-and-disconnects", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(`upstream ${req.url}`));
    svc = await startService({ MIRROR_CACHE_UPSTREAM_TIMEOUT_MS: "500", MIRROR_CACHE_CONNECT_TIMEOUT_MS: "200" });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("a test call whose key another caller holds waits for that caller's record instead of forwarding again", async () => {
    const id = rid();
    const key = callKey(callTuple(id, "GET", up.authority, "/once"), 0);
    expect(await svc.store.claim(key, 10_000)).toBe(true); // "another replica" forwards it
    const pending = send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/once" });
    await sleep(100);
    await svc.store.put(key, { status: 202, headers: [["content-type", "text/plain"]], body: Buffer.from("from the other replica") }, 10_000);
    const a = await pending;
    expect(a.status).toBe(202);
    expect(a.headers["x-mirror-cache"]).toBe("pass");
    expect(a.text).toBe("from the other replica");
    expect(up.seen.filter((s) => s.url === "/once")).toHaveLength(0);
  });

  it("a client that goes away mid-body: nothing recorded, the claim released, the service fine", async () => {
    const id = rid();
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port: svc.port,
        method: "POST",
        path: "/upload",
        agent: false,
        headers: { host: up.authority, "x-mirror-stack": "test", "x-request-id": id, "content-length": "100000" },
      });
      req.on("error", () => resolve());
      req.write(Buffer.alloc(1000, 1));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 150);
    });
    const key = callKey(callTuple(id, "POST", up.authority, "/upload"), 0);
    let released = false;
    for (let i = 0; i < 50 && !released; i++) {
      await sleep(50);
      released = await svc.store.claim(key, 1000);
    }
    expect(released).toBe(true);
    expect(await svc.store.get(key)).toBeUndefined();
    const ok = await send(svc.port, { host: up.authority, stack: "test", rid: rid(), path: "/still-fine" });
    expect(ok.status).toBe(200);
  });

  it("a client that goes away while its bodiless call is forwarded: the answer is still recorded for the mirror", async () => {
    const slow = await startUpstream((_q, res) => setTimeout(() => res.end("late but real"), 200));
    try {
      const id = rid();
      await new Promise<void>((resolve) => {
        const req = httpRequest({ host: "127.0.0.1", port: svc.port, path: "/s", agent: false, headers: { host: slow.authority, "x-mirror-stack": "test", "x-request-id": id } });
        req.on("error", () => resolve());
        req.end();
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
      const m = await send(svc.port, { host: slow.authority, stack: "mirror", rid: id, path: "/s" });
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(m.text).toBe("late but real");
    } finally {
      await slow.close();
    }
  });
});
