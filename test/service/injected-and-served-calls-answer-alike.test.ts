// Served requests go from the server's listener straight to the call dispatcher; `inject()` goes
// through Fastify's catch-all route to the same dispatcher. Both must answer every kind of call
// alike, and share one store: a test call made one way pairs with a mirror call made the other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("injected-and-served-calls-answer-alike", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((q, res, body) => {
      res.writeHead(201, { "content-type": "text/plain", "x-up": "1" });
      res.end(`${q.method} ${q.url} ${body.length}`);
    });
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "100" });
  });
  afterAll(async () => {
    await svc?.close();
    await up?.close();
  });

  async function both(o: { method?: string; path?: string; host?: string; stack?: string; rid?: string; body?: string }) {
    const headers: Record<string, string> = {};
    if (o.host !== undefined) headers.host = o.host;
    if (o.stack !== undefined) headers["x-mirror-stack"] = o.stack;
    if (o.rid !== undefined) headers["x-request-id"] = o.rid;
    const injected = await svc.app.inject({ method: (o.method ?? "GET") as "GET", url: o.path ?? "/", headers, payload: o.body });
    const served = await send(svc.port, { ...o, rid: o.rid === undefined ? undefined : `${o.rid}-served` });
    return { injected, served };
  }

  const cases: Array<[string, Parameters<typeof both>[0]]> = [
    ["a probe", { path: "/healthz" }],
    ["a missing stack header", { path: "/x", host: "api.example" }],
    ["an invalid stack value", { path: "/x", host: "api.example", stack: "canary", rid: "r" }],
    ["a missing request id", { path: "/x", host: "api.example", stack: "mirror" }],
    ["a bad Host", { path: "/x", host: "a b", stack: "mirror", rid: "r" }],
    ["an undecodable path (a call like any other: here a miss)", { path: "/a%zz", host: "api.example", stack: "mirror", rid: "r" }],
    ["a mirror call with a body and no record (a miss)", { method: "POST", path: "/x", host: "api.example", stack: "mirror", rid: "r", body: "amount=1" }],
    ["an egress-denied test call", { path: "/x", host: "169.254.169.254", stack: "test", rid: "r" }],
  ];
  for (const [name, o] of cases) {
    it(`${name}: same status, cache header and error code`, async () => {
      const { injected, served } = await both(o);
      expect(served.status).toBeGreaterThanOrEqual(200);
      expect(injected.statusCode).toBe(served.status);
      expect(injected.headers["x-mirror-cache"]).toBe(served.headers["x-mirror-cache"]);
      if (served.headers["content-type"] === "application/json") expect(injected.json().code ?? injected.json().status).toBe(served.json().code ?? served.json().status);
    });
  }

  it("a test call injected pairs with a mirror call served, and the other way round, byte for byte", async () => {
    for (const [first, second] of [
      ["inject", "serve"],
      ["serve", "inject"],
    ] as const) {
      const id = rid(first);
      const call = async (how: "inject" | "serve", stack: string) => {
        if (how === "serve") {
          const a = await send(svc.port, { method: "POST", path: "/pay?x=1", host: up.authority, stack, rid: id, body: "abc" });
          return { status: a.status, cache: a.headers["x-mirror-cache"], up: a.headers["x-up"], body: a.text };
        }
        const a = await svc.app.inject({ method: "POST", url: "/pay?x=1", headers: { host: up.authority, "x-mirror-stack": stack, "x-request-id": id }, payload: "abc" });
        return { status: a.statusCode, cache: a.headers["x-mirror-cache"], up: a.headers["x-up"], body: a.body };
      };
      const t = await call(first, "test");
      const m = await call(second, "mirror");
      expect(t).toEqual({ status: 201, cache: "pass", up: "1", body: "POST /pay?x=1 3" });
      expect(m).toEqual({ ...t, cache: "hit" });
    }
  });
});
