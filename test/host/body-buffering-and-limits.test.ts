// contract.md §4/§5: StopIterationAndBuffer accumulates (body_size is the total), the connection
// buffer limit turns into Envoy's 413, set_buffer_bytes supports only replace-from-front/append,
// trailers can be added from the last body callback.
import { beforeAll, describe, expect, it } from "vitest";
import { fixture } from "./support/fixtures.ts";
import { get, last, lines, probeHost, text } from "./support/probe.ts";

describe("request bodies", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("chunks delivered with StopIterationAndBuffer accumulate; Continue at the end sends all upstream", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-body-action": "1" }), false);
    host.callOnRequestBody(s, "aaa", false);
    host.callOnRequestBody(s, "bbb", false);
    host.callOnRequestBody(s, "cc", true);
    expect(lines(host, "request_body ").map((l) => l.split(" ").slice(2, 5).join(" "))).toEqual(["3 0 0:aaa", "6 0 0:aaabbb", "8 1 0:aaabbbcc"]);
    expect(text(host.getUpstreamRequest(s)!.body)).toBe("aaabbbcc");
  });

  it("a buffered body over the buffer limit gets Envoy's 413, through the filter's response callbacks", async () => {
    const host = await probeHost((o) => o.withBufferLimitBytes(5));
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-body-action": "1" }), false);
    host.callOnRequestBody(s, "aaa", false);
    host.callOnRequestBody(s, "bbb", false);
    const r = host.getLocalResponse(s)!;
    expect(r.statusCode).toBe(413);
    expect(r.details).toBe("request_payload_too_large");
    expect(text(r.body)).toBe("Payload Too Large");
    expect(last(host, "response_headers ")).toMatch(/^response_headers 2 \d 0 status=413/);
    expect(host.getUpstreamRequest(s)?.complete ?? false).toBe(false);
  });

  it("set_buffer_bytes: append and replace work, a write in the middle is BadArgument", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-body-append": "+tail", "x-test-body-middle": "1" }), false);
    host.callOnRequestBody(s, "body", true);
    expect(last(host, "append ")).toBe("append 0");
    expect(last(host, "middle ")).toBe("middle 2");
    expect(text(host.getUpstreamRequest(s)!.body)).toBe("body+tail");

    const s2 = host.initializeHttpContext();
    host.callOnRequestHeaders(s2, get({ "x-test-body-replace": "new" }), false);
    host.callOnRequestBody(s2, "old body", true);
    expect(text(host.getUpstreamRequest(s2)!.body)).toBe("new");
  });

  it("trailers can be added from the last body callback when the request had none", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-add-trailer": "1" }), false);
    host.callOnRequestBody(s, "x", true);
    expect(last(host, "add_trailer ")).toBe("add_trailer 0");
    expect(host.getUpstreamRequest(s)!.trailers).toEqual([["x-trailer", "added"]]);
  });

  it("request trailers reach on_request_trailers; StopIteration holds the request until continued", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-trailers-action": "1" }), false);
    host.callOnRequestBody(s, "x", false);
    host.callOnRequestTrailers(s, { "grpc-status": "0" });
    expect(last(host, "request_trailers ")).toBe("request_trailers 2 1");
    expect(host.getStreamState(s)).toBe("paused");
    expect(host.getUpstreamRequest(s)!.complete).toBe(false);
  });
});
