// Envoy runs several root contexts in one VM (inbound + outbound, several WasmPlugins built
// from the same module): each keeps its own configuration, streams and cache calls.
import { describe, expect, it } from "vitest";
import { LogLevel, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { CACHE_CLUSTER, config, counters, options, request, values } from "./helpers.ts";

describe("several root contexts in one VM", () => {
  it("keep their own configuration, and cache answers reach the stream that asked", async () => {
    const h = await ProxyWasmHost.create(options(config("test")));
    const other = h.addRootContext({ configuration: config("mirror", { stack_header: "x-azar-mirror", stack_values: { test: "false", mirror: "true" } }) });
    expect(other.configured).toBe(true);

    const a = h.initializeHttpContext();
    const b = h.initializeHttpContext({ rootContextId: other.id });
    h.callOnRequestHeaders(a, request([["x-request-id", "A"]]).filter(([k, v]) => k !== "x-request-id" || v === "A"), true);
    h.callOnRequestHeaders(b, request([["x-request-id", "B"]]).filter(([k, v]) => k !== "x-request-id" || v === "B"), true);

    const calls = h.getPendingHttpCalls();
    expect(calls).toHaveLength(2);
    const callA = calls.find((c) => values(c.headers, "x-request-id")[0] === "A")!;
    const callB = calls.find((c) => values(c.headers, "x-request-id")[0] === "B")!;
    expect(values(callA.headers, "x-mirror-stack")).toEqual(["test"]);
    expect(values(callA.headers, "x-azar-mirror")).toEqual([]);
    expect(values(callB.headers, "x-azar-mirror")).toEqual(["true"]);
    expect(callA.rootContextId).not.toBe(callB.rootContextId);

    // Answer in the opposite order: each answer must land on its own stream.
    h.respondToHttpCall(callB, { headers: [[":status", "202"], ["x-mirror-cache", "hit"]], body: "for B" });
    h.respondToHttpCall(callA, { headers: [[":status", "201"], ["x-mirror-cache", "pass"]], body: "for A" });
    expect(h.getLocalResponse(a)?.statusCode).toBe(201);
    expect(h.getLocalResponse(b)?.statusCode).toBe(202);
    expect(h.failed).toBe(false);
  });

  it("serve inbound and outbound from the same module side by side", async () => {
    const h = await ProxyWasmHost.create(options(config("mirror")));
    const inbound = h.addRootContext({ configuration: { stack: "mirror", direction: "inbound" } });
    const s = h.initializeHttpContext({ rootContextId: inbound.id });
    h.callOnRequestHeaders(s, request([], "reviews-shadow:9080"), true);
    expect(values(h.getUpstreamRequest(s)!.headers, ":authority")).toEqual(["reviews:9080"]);
    const out = h.initializeHttpContext();
    h.callOnRequestHeaders(out, request(), true);
    expect(h.getPendingHttpCalls()).toHaveLength(1);
  });

  it("survive the removal of one of them (root on_done and on_delete)", async () => {
    const h = await ProxyWasmHost.create(options(config("test")).withWorkers(2));
    const second = h.addRootContext({ configuration: config("mirror") });
    const pending = h.initializeHttpContext({ rootContextId: second.id, worker: 0 });
    h.callOnRequestHeaders(pending, request(), true);

    h.removeRootContext(second.id);
    expect(h.failed).toBe(false);

    for (const worker of [0, 1]) {
      const s = h.initializeHttpContext({ worker });
      h.callOnRequestHeaders(s, request(), true);
    }
    const calls = h.getPendingHttpCalls();
    expect(calls).toHaveLength(2);
    for (const c of calls) h.respondToHttpCall(c, { headers: [[":status", "200"], ["x-mirror-cache", "pass"]] });
    expect(counters(h).answered).toBe(2);
    expect(h.failed).toBe(false);
  });

  it("log nothing at error level while they work", async () => {
    const h = await ProxyWasmHost.create(options(config("test")));
    h.addRootContext({ configuration: { stack: "test", cache_cluster: CACHE_CLUSTER, direction: "inbound" } });
    expect(h.getLogs(LogLevel.Error)).toEqual([]);
  });
});
