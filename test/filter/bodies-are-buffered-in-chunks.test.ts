// CONTRACTS.md "Tagged call with a body", buffer_bodies: true (Envoy PluginConfig with
// allow_on_headers_stop_iteration): headers held with StopIteration, body chunks buffered to
// end of stream (or through trailers), then one dispatch with the whole body.
import { describe, expect, it } from "vitest";
import { Action, BodyAction, type EmulatorOptions } from "../proxy-wasm-host/index.ts";
import { counters, host, onlyCall, post, text, values } from "./helpers.ts";

const allow = (o: EmulatorOptions) => o.withAllowOnHeadersStopIteration(true);

describe("with buffer_bodies: true", () => {
  for (const stack of ["test", "mirror"] as const) {
    it(`holds the headers, buffers every chunk, and dispatches the whole body (${stack} stack)`, async () => {
      const h = await host(stack, { buffer_bodies: true }, allow);
      const s = h.initializeHttpContext();
      expect(h.callOnRequestHeaders(s, post(), false)).toBe(Action.StopIteration);
      expect(h.callOnRequestBody(s, "{\"a\":", false)).toBe(BodyAction.StopIterationAndBuffer);
      expect(h.callOnRequestBody(s, "[1,2,", false)).toBe(BodyAction.StopIterationAndBuffer);
      expect(h.getPendingHttpCalls()).toHaveLength(0);
      h.callOnRequestBody(s, "3]}", true);

      const call = onlyCall(h);
      expect(text(call.body)).toBe("{\"a\":[1,2,3]}");
      expect(values(call.headers, ":method")).toEqual(["POST"]);
      expect(values(call.headers, "x-mirror-stack")).toEqual([stack]);
      expect(h.getUpstreamRequest(s)).toBeUndefined();

      h.respondToHttpCall(call, { headers: [[":status", "200"], ["x-mirror-cache", stack === "test" ? "pass" : "hit"]], body: "done" });
      expect(text(h.getLocalResponse(s)?.body)).toBe("done");
      expect(counters(h)).toMatchObject({ tagged: 1, dispatched: 1, answered: 1, body_not_buffered: 0 });
    });
  }

  it("stays held through trailers and sends body and trailers in the dispatch", async () => {
    const h = await host("mirror", { buffer_bodies: true }, allow);
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, post(), false);
    h.callOnRequestBody(s, "part-1;", false);
    h.callOnRequestBody(s, "part-2", false);
    expect(h.getPendingHttpCalls()).toHaveLength(0);
    expect(h.callOnRequestTrailers(s, [["x-checksum", "abc"]])).toBe(Action.StopIteration);

    const call = onlyCall(h);
    expect(text(call.body)).toBe("part-1;part-2");
    expect(values(call.trailers, "x-checksum")).toEqual(["abc"]);
    expect(h.getUpstreamRequest(s)).toBeUndefined();
  });

  it("accepts a body of exactly max_body_bytes", async () => {
    const h = await host("mirror", { buffer_bodies: true, max_body_bytes: 10 }, allow);
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, post(), false);
    h.callOnRequestBody(s, "12345", false);
    h.callOnRequestBody(s, "67890", true);
    expect(text(onlyCall(h).body)).toBe("1234567890");
  });

  it("with max_body_bytes 0, dispatches an empty body and refuses any byte", async () => {
    const h = await host("mirror", { buffer_bodies: true, max_body_bytes: 0 }, allow);
    const empty = h.initializeHttpContext();
    h.callOnRequestHeaders(empty, post(), false);
    h.callOnRequestBody(empty, "", true);
    expect(onlyCall(h).body.length).toBe(0);

    const one = h.initializeHttpContext();
    h.callOnRequestHeaders(one, post(), false);
    h.callOnRequestBody(one, "x", true);
    expect(h.getLocalResponse(one)?.statusCode).toBe(503);
  });

  it("on the test stack, a failed cache call sends the buffered body upstream", async () => {
    const h = await host("test", { buffer_bodies: true }, allow);
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, post(), false);
    h.callOnRequestBody(s, "abc", false);
    h.callOnRequestBody(s, "def", true);
    h.failHttpCall(onlyCall(h), "timeout");
    const up = h.getUpstreamRequest(s);
    expect(text(up?.body)).toBe("abcdef");
    expect(up?.complete).toBe(true);
    expect(values(up!.headers, "x-mirror-stack")).toEqual(["test"]);
  });

  it("without allow_on_headers_stop_iteration, Envoy never delivers the body: the caveat in the README", async () => {
    const h = await host("test", { buffer_bodies: true });
    const s = h.initializeHttpContext();
    expect(h.callOnRequestHeaders(s, post(), false)).toBe(Action.StopAllIterationAndWatermark);
    h.callOnRequestBody(s, "abc", true);
    expect(h.getPendingHttpCalls()).toHaveLength(0);
    expect(h.getStreamState(s)).toBe("paused");
  });
});

describe("with buffer_bodies: false (the default)", () => {
  it("lets a test call with a body continue to its upstream, tagged and counted", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    expect(h.callOnRequestHeaders(s, post([["x-mirror-stack", "mirror"]]), false)).toBe(Action.Continue);
    expect(h.callOnRequestBody(s, "payload", true)).toBe(BodyAction.Continue);
    const up = h.getUpstreamRequest(s);
    expect(values(up!.headers, "x-mirror-stack")).toEqual(["test"]);
    expect(text(up!.body)).toBe("payload");
    expect(h.getPendingHttpCalls()).toHaveLength(0);
    expect(counters(h)).toMatchObject({ tagged: 1, body_not_buffered: 1, dispatched: 0 });
  });

  it("refuses a mirror call with a body: 503 body-not-buffered", async () => {
    const h = await host("mirror");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, post(), false);
    expect(h.getLocalResponse(s)?.statusCode).toBe(503);
    expect(values(h.getLocalResponse(s)!.headers, "x-mirror-cache")).toEqual(["body-not-buffered"]);
    expect(h.getUpstreamRequest(s)).toBeUndefined();
  });
});
