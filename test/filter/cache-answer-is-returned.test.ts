// CONTRACTS.md "Cache answered": a dispatch response carrying x-mirror-cache (any status)
// becomes the local reply: the cache's status, body and end-to-end headers.
import { describe, expect, it } from "vitest";
import { counters, host, onlyCall, request, text, values } from "./helpers.ts";

describe("a cache answer", () => {
  for (const stack of ["test", "mirror"] as const) {
    it(`is sent back as a local reply with the cache's status, body and headers (${stack} stack)`, async () => {
      const h = await host(stack);
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request(), true);
      h.respondToHttpCall(onlyCall(h), {
        headers: [[":status", "201"], ["x-mirror-cache", stack === "test" ? "pass" : "hit"], ["content-type", "application/json"], ["etag", "\"v1\""]],
        body: "{\"id\":7}",
      });

      const reply = h.getLocalResponse(s);
      expect(reply?.statusCode).toBe(201);
      expect(text(reply?.body)).toBe("{\"id\":7}");
      expect(values(reply!.headers, "x-mirror-cache")).toEqual([stack === "test" ? "pass" : "hit"]);
      expect(values(reply!.headers, "etag")).toEqual(["\"v1\""]);
      expect(values(reply!.headers, "content-type")).toEqual(["application/json"]);
      expect(h.getUpstreamRequest(s)).toBeUndefined();
      expect(h.getStreamInfo(s).hung).toBeUndefined();
      expect(counters(h)).toMatchObject({ dispatched: 1, answered: 1, failed_open: 0, refused: 0 });
    });
  }

  it("keeps any status the cache chose (a miss is the cache's 504, not a failure)", async () => {
    for (const [status, verdict] of [["504", "miss"], ["403", "denied"], ["400", "invalid"], ["500", "pass"]] as const) {
      const h = await host("mirror");
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request(), true);
      h.respondToHttpCall(onlyCall(h), { headers: [[":status", status], ["x-mirror-cache", verdict]], body: "{}" });
      expect(h.getLocalResponse(s)?.statusCode).toBe(Number(status));
      expect(values(h.getLocalResponse(s)!.headers, "x-mirror-cache")).toEqual([verdict]);
      expect(counters(h).refused).toBe(0);
    }
  });

  it("passes no pseudo-headers or hop-by-hop headers of the cache response on", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    h.respondToHttpCall(onlyCall(h), {
      headers: [
        [":status", "200"], ["x-mirror-cache", "pass"], ["connection", "close, x-hop"], ["keep-alive", "timeout=5"],
        ["transfer-encoding", "chunked"], ["upgrade", "websocket"], ["te", "trailers"], ["trailer", "x-sum"],
        ["proxy-connection", "close"], ["x-hop", "1"], ["content-length", "999"], ["x-end-to-end", "kept"],
      ],
      body: "hello",
    });
    const reply = h.getLocalResponse(s)!;
    const names = reply.headers.map(([k]) => k);
    for (const hop of ["connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection", "x-hop"]) {
      expect(names).not.toContain(hop);
    }
    expect(values(reply.headers, "x-end-to-end")).toEqual(["kept"]);
    // Envoy recomputes content-length from the body; the cache's stale value is not passed on.
    expect(values(reply.headers, "content-length")).not.toContain("999");
    expect(text(reply.body)).toBe("hello");
  });

  it("answers with an empty body when the cache sent none", async () => {
    const h = await host("mirror");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    h.respondToHttpCall(onlyCall(h), { headers: [[":status", "204"], ["x-mirror-cache", "hit"]] });
    expect(h.getLocalResponse(s)?.statusCode).toBe(204);
    expect(h.getLocalResponse(s)?.body.length).toBe(0);
  });

  it("runs the local reply through the filter's response callbacks without a second reply", async () => {
    const h = await host("mirror");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    h.respondToHttpCall(onlyCall(h), { headers: [[":status", "200"], ["x-mirror-cache", "hit"]], body: "x" });
    const info = h.getStreamInfo(s);
    expect(info.hung).toBeUndefined();
    expect(info.state).toBe("local-reply");
    expect(h.getDownstreamResponse(s)?.complete).toBe(true);
    expect(h.failed).toBe(false);
  });
});
