// CONTRACTS.md "Tagged call without a body": the app's stack header is removed, the request
// is held, and exactly one dispatch goes to cache_cluster with the original pseudo-headers,
// the request headers, one stack header, the request id and timeout_ms.
import { describe, expect, it } from "vitest";
import { Action } from "../proxy-wasm-host/index.ts";
import { CACHE_CLUSTER, counters, host, onlyCall, request, values } from "./helpers.ts";

describe("a tagged call without a body", () => {
  for (const stack of ["test", "mirror"] as const) {
    it(`is held and dispatched to the cache once (${stack} stack)`, async () => {
      const h = await host(stack);
      const s = h.initializeHttpContext();
      const action = h.callOnRequestHeaders(s, request([["x-mirror-stack", "mirror"], ["x-mirror-stack", "test"]]), true);

      expect(action).not.toBe(Action.Continue);
      expect(h.getStreamState(s)).toBe("paused");
      expect(h.getUpstreamRequest(s)).toBeUndefined();
      const call = onlyCall(h);
      expect(call.cluster).toBe(CACHE_CLUSTER);
      expect(call.timeoutMs).toBe(5000);
      expect(values(call.headers, ":method")).toEqual(["GET"]);
      expect(values(call.headers, ":path")).toEqual(["/v1/items?page=2"]);
      expect(values(call.headers, ":authority")).toEqual(["api.example.com"]);
      expect(values(call.headers, "x-mirror-stack")).toEqual([stack]);
      expect(values(call.headers, "x-request-id")).toEqual(["req-1"]);
      expect(values(call.headers, "accept")).toEqual(["application/json"]);
      expect(call.body.length).toBe(0);
      expect(counters(h)).toMatchObject({ tagged: 1, dispatched: 1, passthrough: 0 });
      expect(h.failed).toBe(false);
    });
  }

  it("keeps the header order and repeated end-to-end headers", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request([["x-tag", "a"], ["x-tag", "b"], ["cookie", "k=v"]]), true);
    const call = onlyCall(h);
    expect(values(call.headers, "x-tag")).toEqual(["a", "b"]);
    expect(call.headers.map(([k]) => k).slice(0, 4)).toEqual([":method", ":path", ":authority", ":scheme"]);
  });

  it("drops hop-by-hop headers, including those named by connection, from the dispatch", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request([
      ["connection", "keep-alive, X-Private-Hop"], ["keep-alive", "timeout=5"], ["te", "trailers"],
      ["upgrade", "h2c"], ["proxy-connection", "keep-alive"], ["transfer-encoding", "chunked"],
      ["trailer", "x-checksum"], ["content-length", "0"], ["x-private-hop", "1"], ["x-kept", "yes"],
    ]), true);
    const names = onlyCall(h).headers.map(([k]) => k);
    for (const hop of ["connection", "keep-alive", "te", "upgrade", "proxy-connection", "transfer-encoding", "trailer", "content-length", "x-private-hop"]) {
      expect(names).not.toContain(hop);
    }
    expect(names).toContain("x-kept");
  });

  it("uses the configured header names, values and timeout", async () => {
    const h = await host("mirror", {
      stack_header: "X-Azar-Mirror",
      stack_values: { test: "false", mirror: "true" },
      request_id_header: "x-trace-key",
      timeout_ms: 250,
    });
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request([["x-trace-key", "k-9"], ["x-azar-mirror", "false"]]), true);
    const call = onlyCall(h);
    expect(values(call.headers, "x-azar-mirror")).toEqual(["true"]);
    expect(values(call.headers, "x-trace-key")).toEqual(["k-9"]);
    expect(call.timeoutMs).toBe(250);
  });

  it("tags the held request itself, so a fail-open continues tagged", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request([["x-mirror-stack", "mirror"]]), true);
    expect(values(h.getCurrentRequestHeaders(s), "x-mirror-stack")).toEqual(["test"]);
  });
});
