import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/redis-server.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";
import { mapResolver } from "./support/spies.ts";

describe("upstream-failure-is-recorded-for-mirror", () => {
  let up: Upstream;
  let svc: Service;
  let deadPort: number;
  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === "/hang") return; // never answers
      if (req.url === "/slow-body") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("partial");
        return; // body never finishes
      }
      if (req.url === "/reset") return req.socket.destroy();
      if (req.url === "/big") return res.end(Buffer.alloc(4096, 1));
      if (req.url === "/500") {
        res.statusCode = 500;
        return res.end("upstream error page");
      }
      res.end("fine");
    });
    deadPort = await freePort();
    svc = await startService(
      { MIRROR_CACHE_UPSTREAM_TIMEOUT_MS: "300", MIRROR_CACHE_CONNECT_TIMEOUT_MS: "500", MIRROR_CACHE_MAX_RESPONSE_BYTES: "1024", MIRROR_CACHE_WAIT_MS: "500" },
      { resolver: mapResolver({}) },
    );
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  const cases: Array<[string, () => { host: string; path: string }, number, string]> = [
    ["connection refused", () => ({ host: `127.0.0.1:${deadPort}`, path: "/" }), 502, "UPSTREAM_UNAVAILABLE"],
    ["a name that does not resolve", () => ({ host: "no-such-host.test", path: "/" }), 502, "UPSTREAM_UNAVAILABLE"],
    ["connection reset before an answer", () => ({ host: up.authority, path: "/reset" }), 502, "UPSTREAM_UNAVAILABLE"],
    ["no headers within the timeout", () => ({ host: up.authority, path: "/hang" }), 504, "UPSTREAM_TIMEOUT"],
    ["the body stalls past the timeout", () => ({ host: up.authority, path: "/slow-body" }), 504, "UPSTREAM_TIMEOUT"],
    ["a response body over MIRROR_CACHE_MAX_RESPONSE_BYTES", () => ({ host: up.authority, path: "/big" }), 502, "UPSTREAM_RESPONSE_TOO_LARGE"],
  ];

  it.each(cases)("%s: the test call gets a JSON error with x-mirror-cache: pass, and the mirror the same answer", async (_what, target, status, code) => {
    const { host, path } = target();
    const id = rid();
    const t = await send(svc.port, { host, path, stack: "test", rid: id });
    expect(t.status).toBe(status);
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    expect(t.headers["content-type"]).toBe("application/json");
    expect(t.json().code).toBe(code);
    expect(t.json().message.length).toBeGreaterThan(10);
    const m = await send(svc.port, { host, path, stack: "mirror", rid: id });
    expect(m.status).toBe(status);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.body.equals(t.body)).toBe(true);
  });

  // A body the upstream never took is still arriving when the forward fails: the caller is waiting,
  // not gone (it was once answered with nothing and counted client_closed).
  it.each(["content-length", "chunked"] as const)("a request body (%s) the upstream never took: the failure is answered and recorded, the connection closed", async (framing) => {
    const id = rid();
    async function* body(): AsyncIterable<Buffer> {
      for (let i = 0; i < 4; i++) yield Buffer.alloc(64 * 1024, 0x62);
    }
    const headers: Record<string, string> = framing === "chunked" ? { "transfer-encoding": "chunked" } : { "content-length": String(4 * 64 * 1024) };
    const t = await send(svc.port, { method: "POST", host: `127.0.0.1:${deadPort}`, path: "/", stack: "test", rid: id, headers, body: body() });
    expect([t.status, t.headers["x-mirror-cache"], t.json().code]).toEqual([502, "pass", "UPSTREAM_UNAVAILABLE"]);
    expect(t.headers.connection).toBe("close"); // the unread rest of the body is not left on the connection
    const m = await send(svc.port, { method: "POST", host: `127.0.0.1:${deadPort}`, path: "/", stack: "mirror", rid: id, body: "x" });
    expect([m.status, m.headers["x-mirror-cache"]]).toEqual([502, "hit"]);
    expect(m.body.equals(t.body)).toBe(true);
  });

  it("an upstream's own 5xx is an answer like any other: passed and replayed as is", async () => {
    const id = rid();
    const t = await send(svc.port, { host: up.authority, path: "/500", stack: "test", rid: id });
    expect(t.status).toBe(500);
    expect(t.text).toBe("upstream error page");
    const m = await send(svc.port, { host: up.authority, path: "/500", stack: "mirror", rid: id });
    expect(m.status).toBe(500);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe("upstream error page");
  });

  it("counts failures by outcome", async () => {
    const text = await svc.app.metrics.registry.getSingleMetricAsString("mirror_cache_calls_total");
    expect(text).toMatch(/stack="test",outcome="upstream_unavailable"} [1-9]/);
    expect(text).toMatch(/stack="test",outcome="upstream_timeout"} [1-9]/);
    expect(text).toMatch(/stack="mirror",outcome="hit"} [1-9]/);
  });
});
