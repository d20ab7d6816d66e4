import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("test-call-forwarded-and-recorded", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((req, res, body) => {
      res.setHeader("content-type", "text/plain");
      res.setHeader("set-cookie", ["a=1", "b=2"]);
      res.setHeader("x-upstream", "yes");
      res.setHeader("x-mirror-cache", "from-upstream");
      res.statusCode = req.method === "POST" ? 201 : 200;
      if (req.method === "HEAD") {
        res.setHeader("content-length", "1234");
        return res.end();
      }
      res.end(`${req.method} ${req.url} ${body.toString()}`);
    });
    svc = await startService();
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("forwards a test call, answers the upstream's answer with x-mirror-cache: pass, and records it", async () => {
    const id = rid();
    const a = await send(svc.port, { method: "POST", path: "/orders?x=1", host: up.authority, stack: "test", rid: id, body: "hello", headers: { "content-type": "text/plain" } });
    expect(a.status).toBe(201);
    expect(a.headers["x-mirror-cache"]).toBe("pass");
    expect(a.headers["x-upstream"]).toBe("yes");
    expect(a.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(a.text).toBe("POST /orders?x=1 hello");
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0].headers.host).toBe(up.authority);
    expect(up.seen[0].headers["x-request-id"]).toBe(id);
    expect(up.seen[0].headers["x-mirror-stack"]).toBeUndefined();

    const m = await send(svc.port, { method: "POST", path: "/orders?x=1", host: up.authority, stack: "mirror", rid: id, body: "hello" });
    expect(m.status).toBe(201);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.body.equals(a.body)).toBe(true);
    expect(m.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(m.headers["content-type"]).toBe("text/plain");
    expect(up.seen).toHaveLength(1);
    expect(a.rawHeaders.filter((h) => h.toLowerCase() === "x-mirror-cache")).toHaveLength(1);
    expect(m.rawHeaders.filter((h) => h.toLowerCase() === "x-mirror-cache")).toHaveLength(1);
  });

  it("HEAD: the upstream's Content-Length is kept, no body, and replayed the same", async () => {
    const id = rid();
    const a = await send(svc.port, { method: "HEAD", path: "/h", host: up.authority, stack: "test", rid: id });
    expect(a.status).toBe(200);
    expect(a.headers["content-length"]).toBe("1234");
    expect(a.body.length).toBe(0);
    const m = await send(svc.port, { method: "HEAD", path: "/h", host: up.authority, stack: "mirror", rid: id });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.headers["content-length"]).toBe(a.headers["content-length"]);
  });

  it("bodies are byte-identical for binary and large answers", async () => {
    const big = await startUpstream((_q, res) => res.end(Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 0xff))));
    try {
      const id = rid();
      const t = await send(svc.port, { host: big.authority, stack: "test", rid: id, path: "/bin" });
      const m = await send(svc.port, { host: big.authority, stack: "mirror", rid: id, path: "/bin" });
      expect(t.body.length).toBe(300_000);
      expect(m.body.equals(t.body)).toBe(true);
    } finally {
      await big.close();
    }
  });
});
