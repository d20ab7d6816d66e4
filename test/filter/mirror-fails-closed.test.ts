// CONTRACTS.md "Cache failed", mirror stack: a 503 with x-mirror-cache: unavailable, and the
// call never reaches a real upstream.
import { describe, expect, it } from "vitest";
import { EmulatorOptions, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { config, counters, host, onlyCall, options, request, text, values } from "./helpers.ts";

function expectRefused(h: ProxyWasmHost, s: number, reason = "unavailable"): void {
  const reply = h.getLocalResponse(s);
  expect(reply?.statusCode).toBe(503);
  expect(values(reply!.headers, "x-mirror-cache")).toEqual([reason]);
  expect(JSON.parse(text(reply!.body)).code).toMatch(/^MIRROR_/);
  expect(h.getUpstreamRequest(s)).toBeUndefined();
  expect(h.getStreamInfo(s).hung).toBeUndefined();
}

describe("the mirror stack fails closed", () => {
  for (const how of ["reset", "no-healthy-upstream", "timeout"] as const) {
    it(`answers 503 unavailable when the cache call ends in ${how}`, async () => {
      const h = await host("mirror");
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request(), true);
      h.failHttpCall(onlyCall(h), how);
      expectRefused(h, s);
      expect(counters(h)).toMatchObject({ dispatched: 1, refused: 1, failed_open: 0 });
    });
  }

  it("answers 503 unavailable when the response has no x-mirror-cache header", async () => {
    const h = await host("mirror");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    h.respondToHttpCall(onlyCall(h), { headers: [[":status", "200"]], body: "real upstream data" });
    expectRefused(h, s);
    expect(text(h.getLocalResponse(s)!.body)).not.toContain("real upstream data");
  });

  it("answers 503 unavailable when Envoy refuses the dispatch", async () => {
    const h = await ProxyWasmHost.create(options(config("mirror"), []));
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    expectRefused(h, s);
    expect(counters(h)).toMatchObject({ dispatched: 0, refused: 1 });
  });

  it("answers 503 unavailable when the body is over max_body_bytes", async () => {
    const h = await host("mirror", { buffer_bodies: true, max_body_bytes: 4 }, (o: EmulatorOptions) => o.withAllowOnHeadersStopIteration(true));
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), false);
    h.callOnRequestBody(s, "12345", true);
    expectRefused(h, s);
    expect(h.getPendingHttpCalls()).toHaveLength(0);
  });

  it("answers 503 body-not-buffered for a body while buffer_bodies is false", async () => {
    const h = await host("mirror");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), false);
    expectRefused(h, s, "body-not-buffered");
    expect(h.getPendingHttpCalls()).toHaveLength(0);
    expect(counters(h)).toMatchObject({ body_not_buffered: 1, refused: 1, tagged: 1 });
  });
});
