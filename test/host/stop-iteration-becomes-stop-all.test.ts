// contract.md §4/§11: Envoy turns a headers StopIteration into StopAllIterationAndWatermark
// (no body callback until resumed) unless allow_on_headers_stop_iteration; values clamped;
// a callback that sent a local reply is forced to stop.
import { beforeAll, describe, expect, it } from "vitest";
import { Action } from "../proxy-wasm-host/index.ts";
import { fixture } from "./support/fixtures.ts";
import { CACHE, get, last, lines, probeHost, text } from "./support/probe.ts";

describe("headers StopIteration and Envoy's conversions", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("StopIteration becomes StopAll: body chunks are held, not given to on_request_body", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    expect(host.callOnRequestHeaders(s, get({ "x-test-dispatch": CACHE }), false)).toBe(Action.StopAllIterationAndWatermark);
    host.callOnRequestBody(s, "abc", false);
    host.callOnRequestBody(s, "def", true);
    expect(lines(host, "request_body ")).toEqual([]);
    expect(host.getStreamState(s)).toBe("paused");
    expect(host.getUpstreamRequest(s)).toBeUndefined();
    // Resumed from the http-call callback: headers go on, then ONE body callback with all of it.
    const [call] = host.getPendingHttpCalls();
    host.respondToHttpCall(call.token, { headers: { ":status": "200" } });
    expect(lines(host, "request_body ")).toEqual(["request_body 2 6 1 0:abcdef reqhdr=2:"]);
    const up = host.getUpstreamRequest(s)!;
    expect(text(up.body)).toBe("abcdef");
    expect(up.complete).toBe(true);
    expect(host.getStreamState(s)).toBe("upstream");
  });

  it("with allow_on_headers_stop_iteration the body callback runs while headers are held", async () => {
    const host = await probeHost((o) => o.withAllowOnHeadersStopIteration(true));
    const s = host.initializeHttpContext();
    expect(host.callOnRequestHeaders(s, get({ "x-test-headers-action": "1", "x-test-body-action": "1" }), false)).toBe(Action.StopIteration);
    host.callOnRequestBody(s, "abc", false);
    host.callOnRequestBody(s, "def", true);
    // Buffered: the second call sees the total; request headers still readable (paused from headers).
    expect(lines(host, "request_body ")).toEqual(["request_body 2 3 0 0:abc reqhdr=0:/a", "request_body 2 6 1 0:abcdef reqhdr=0:/a"]);
    expect(text(host.getUpstreamRequest(s)!.body)).toBe("abcdef");
  });

  it("values above the range are clamped to StopAllIterationAndWatermark", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    expect(host.callOnRequestHeaders(s, get({ "x-test-headers-action": "9" }), true)).toBe(Action.StopAllIterationAndWatermark);
  });

  it("a callback that called send_local_response is forced to stop even if it returned Continue", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    expect(host.callOnRequestHeaders(s, get({ "x-test-local-reply": "403", "x-test-headers-action": "0" }), true)).toBe(Action.StopAllIterationAndWatermark);
    expect(host.getUpstreamRequest(s)).toBeUndefined();
    expect(host.getStreamState(s)).toBe("local-reply");
  });

  it("proxy_continue_stream: 0/1 ok, 2 (downstream) ok no-op, 3 (upstream) Unimplemented, 4 BadArgument", async () => {
    const host = await probeHost();
    for (const [t, st] of [["2", "0"], ["3", "12"], ["4", "2"]]) {
      host.callOnRequestHeaders(host.initializeHttpContext(), get({ "x-test-continue-now": t }), true);
      expect(last(host, "continue ")).toBe(`continue ${st}`);
    }
  });
});
