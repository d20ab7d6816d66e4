// CONTRACTS.md "Cache failed", test stack: the original request continues to its real upstream
// (proxy_continue_stream) with the stack header set; it is never lost to the mirror machinery.
import { describe, expect, it } from "vitest";
import { EmulatorOptions, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { config, counters, host, onlyCall, options, post, request, text, values } from "./helpers.ts";

function expectUpstreamTagged(h: ProxyWasmHost, s: number): void {
  const up = h.getUpstreamRequest(s);
  expect(up).toBeDefined();
  expect(values(up!.headers, "x-mirror-stack")).toEqual(["test"]);
  expect(values(up!.headers, "x-request-id")).toEqual(["req-1"]);
  expect(h.getLocalResponse(s)).toBeUndefined();
  expect(h.getStreamState(s)).toBe("upstream");
}

describe("the test stack fails open", () => {
  for (const how of ["reset", "no-healthy-upstream", "timeout"] as const) {
    it(`continues upstream, tagged, when the cache call ends in ${how}`, async () => {
      const h = await host("test");
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request([["x-mirror-stack", "mirror"]]), true);
      h.failHttpCall(onlyCall(h), how);
      expectUpstreamTagged(h, s);
      expect(counters(h)).toMatchObject({ dispatched: 1, failed_open: 1, answered: 0 });
      expect(h.getLogs().some((l) => l.includes("test stack sends the call to its upstream"))).toBe(true);
    });
  }

  it("continues upstream when the response has no x-mirror-cache header, whatever its status", async () => {
    for (const status of ["200", "503", "404"]) {
      const h = await host("test");
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request(), true);
      h.respondToHttpCall(onlyCall(h), { headers: [[":status", status], ["server", "envoy"]], body: "upstream connect error" });
      expectUpstreamTagged(h, s);
      expect(counters(h).failed_open).toBe(1);
    }
  });

  it("continues upstream when Envoy refuses the dispatch (cluster unknown to this proxy)", async () => {
    const h = await ProxyWasmHost.create(options(config("test"), []));
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    expect(h.getPendingHttpCalls()).toHaveLength(0);
    expectUpstreamTagged(h, s);
    expect(counters(h)).toMatchObject({ dispatched: 0, failed_open: 1 });
  });

  it("continues upstream with its whole body when the body is over max_body_bytes", async () => {
    const h = await host("test", { buffer_bodies: true, max_body_bytes: 8 }, (o: EmulatorOptions) => o.withAllowOnHeadersStopIteration(true));
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, post(), false);
    h.callOnRequestBody(s, "12345", false);
    h.callOnRequestBody(s, "6789", true);
    expect(h.getPendingHttpCalls()).toHaveLength(0);
    const up = h.getUpstreamRequest(s);
    expect(text(up?.body)).toBe("123456789");
    expect(values(up!.headers, "x-mirror-stack")).toEqual(["test"]);
    expect(counters(h)).toMatchObject({ failed_open: 1, dispatched: 0 });
  });

  it("keeps serving later requests after failures", async () => {
    const h = await host("test");
    for (let i = 0; i < 3; i++) {
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request(), true);
      h.failHttpCall(onlyCall(h), "reset");
      expect(h.getStreamState(s)).toBe("upstream");
      h.completeHttpContext(s);
    }
    expect(counters(h).failed_open).toBe(3);
    expect(h.failed).toBe(false);
  });
});
