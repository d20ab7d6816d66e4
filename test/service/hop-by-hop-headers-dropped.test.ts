import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("hop-by-hop-headers-dropped", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((_req, res) => {
      res.writeHead(200, [
        ["content-type", "text/plain"],
        ["connection", "x-secret-hop"],
        ["x-secret-hop", "1"],
        ["keep-alive", "timeout=5"],
        ["proxy-connection", "keep-alive"],
        ["trailer", "x-checksum"],
        ["upgrade", "h2c"],
        ["x-end-to-end", "kept"],
      ].flat());
      res.write("chunked ");
      res.end("answer");
    });
    svc = await startService();
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("drops hop-by-hop request headers, those named in Connection, and the stack header; keeps the rest", async () => {
    const a = await send(svc.port, {
      host: up.authority,
      stack: "test",
      rid: rid(),
      headers: {
        connection: "keep-alive, x-client-hop",
        "x-client-hop": "1",
        "keep-alive": "timeout=5",
        "proxy-connection": "keep-alive",
        te: "trailers",
        upgrade: "websocket",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        authorization: "Bearer app-token",
        "x-app": "kept",
      },
    });
    expect(a.status).toBe(200);
    const h = up.seen[0].headers;
    for (const n of ["x-client-hop", "keep-alive", "proxy-connection", "te", "upgrade", "proxy-authorization", "x-mirror-stack"]) expect(h[n], n).toBeUndefined();
    expect(h["x-app"]).toBe("kept");
    expect(h.authorization).toBe("Bearer app-token");
    expect(h["x-request-id"]).toBeDefined();
  });

  it("drops hop-by-hop response headers from the answer and from the record the mirror gets", async () => {
    const id = rid();
    const t = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/r" });
    const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/r" });
    for (const a of [t, m]) {
      expect(a.text).toBe("chunked answer");
      for (const n of ["x-secret-hop", "proxy-connection", "trailer", "upgrade", "transfer-encoding"]) expect(a.headers[n], n).toBeUndefined();
      expect(a.headers["x-end-to-end"]).toBe("kept");
      expect(a.headers["content-length"]).toBe(String("chunked answer".length));
    }
    const rec = await svc.store.get(`${id}\nGET\n${up.authority}\n/r\n0`);
    expect(rec).toBeDefined();
    expect(rec!.headers.map(([n]) => n)).toEqual(["content-type", "x-end-to-end", "date"]);
  });

  it("streams a chunked request body to the upstream", async () => {
    async function* chunks() {
      for (let i = 0; i < 5; i++) yield Buffer.from(`part${i};`);
    }
    const before = up.seen.length;
    const a = await send(svc.port, { method: "POST", host: up.authority, stack: "test", rid: rid(), body: chunks(), headers: { "transfer-encoding": "chunked" } });
    expect(a.status).toBe(200);
    expect(up.seen[before].body.toString()).toBe("part0;part1;part2;part3;part4;");
  });
});
