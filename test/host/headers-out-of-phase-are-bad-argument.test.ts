// contract.md §5 "Phase availability": request headers only in on_request_headers and while the
// request is paused from there; BadArgument for single values afterwards; on_log read-only maps.
import { beforeAll, describe, expect, it } from "vitest";
import { fixture } from "./support/fixtures.ts";
import { CACHE, get, last, probeHost } from "./support/probe.ts";

describe("header maps follow Envoy's phases", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("request headers are BadArgument in the response phase after the request continued", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get(), true);
    host.callOnResponseHeaders(s, [[":status", "200"]], true);
    // reqhdr=2: BadArgument; request.path property: NotFound (Envoy's activation has no headers)
    expect(last(host, "response_headers ")).toBe("response_headers 2 1 1 status=200 reqhdr=2: prop_path=1: callhdr=2:");
  });

  it("request headers stay readable and writable while the request is paused from on_request_headers", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-dispatch": CACHE }), true);
    const [call] = host.getPendingHttpCalls();
    host.respondToHttpCall(call.token, { headers: { ":status": "200" } });
    expect(last(host, "stream_reqhdr ")).toBe("stream_reqhdr 0:/a call_status_via_stream=0:200");
    // The probe added x-after-call before continuing: it reached the upstream.
    expect(host.getUpstreamRequest(s)!.headers).toContainEqual(["x-after-call", "1"]);
  });

  it("request headers are BadArgument in a body callback once on_request_headers returned Continue", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get(), false);
    host.callOnRequestBody(s, "abc", true);
    expect(last(host, "request_body ")).toBe("request_body 2 3 1 0:abc reqhdr=2:");
  });

  it("on_log reads request/response headers but not request trailers (NotFound) and cannot size them", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get(), true);
    host.callOnResponseHeaders(s, [[":status", "204"]], true);
    expect(last(host, "log ")).toBe("log 2 reqhdr=0:/a resphdr=0:204 reqtrl=1: size=2");
  });

  it("get_header_map_size is the byte size of the map, not the pair count", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    const h = get({ "x-test-size": "1" });
    host.callOnRequestHeaders(s, h, true);
    const bytes = h.reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(last(host, "size ")).toBe(`size 0 ${bytes}`);
  });

  it("the first of repeated values is what get_header_map_value returns; names are lower-cased", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, [...get({ "x-test-log-header": "X-Dup" }), ["X-Dup", "one"], ["x-dup", "two"]], true);
    expect(last(host, "header ")).toBe("header 0:one");
  });

  it("headers added in on_request_headers reach the upstream, lower-cased", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-add": "X-Added=yes" }), true);
    expect(last(host, "add ")).toBe("add 0");
    expect(host.getUpstreamRequest(s)!.headers).toContainEqual(["x-added", "yes"]);
  });
});
