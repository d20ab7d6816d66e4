// contract.md §7: proxy_http_call validation in Envoy's order, tokens per VM stepping by 4,
// responses to the root context, reset → 0/0/0 + get_status 11 "reset", Envoy's own 503/504.
import { beforeAll, describe, expect, it } from "vitest";
import { envoyGeneratedResponse } from "../proxy-wasm-host/index.ts";
import { fixture } from "./support/fixtures.ts";
import { CACHE, get, last, lines, probeHost, text } from "./support/probe.ts";

async function dispatchWith(directives: Record<string, string>) {
  const host = await probeHost();
  const s = host.initializeHttpContext();
  host.callOnRequestHeaders(s, get({ "x-test-dispatch": CACHE, ...directives }), true);
  return { host, s };
}

describe("proxy_http_call behaves like Envoy's", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it.each([
    ["a negative timeout", { "x-test-timeout": "-1" }],
    ["an unknown cluster", { "x-test-dispatch": "outbound|80||nope.svc.cluster.local" }],
    ["a missing :path (a Host header does not help)", { "x-test-dispatch-omit": ":path" }],
    ["a missing :method", { "x-test-dispatch-omit": ":method" }],
    ["a missing :authority (a plain host header does not count)", { "x-test-dispatch-omit": ":authority" }],
  ])("%s is BadArgument and nothing is dispatched", async (_what, directives) => {
    const { host } = await dispatchWith(directives);
    expect(last(host, "dispatch ")).toBe("dispatch 2 -");
    expect(host.getPendingHttpCalls()).toEqual([]);
  });

  it("a URL instead of a cluster name is an unknown cluster", async () => {
    const { host } = await dispatchWith({ "x-test-dispatch": "http://mirror-cache:8080" });
    expect(last(host, "dispatch ")).toBe("dispatch 2 -");
  });

  it("tokens start at 4 and step by 4 per VM", async () => {
    const host = await probeHost((o) => o.withWorkers(2));
    for (let i = 0; i < 4; i++) host.callOnRequestHeaders(host.initializeHttpContext(), get({ "x-test-dispatch": CACHE }), true);
    expect(host.getPendingHttpCalls().map((c) => [c.worker, c.token])).toEqual([[0, 4], [0, 8], [1, 4], [1, 8]]);
    // The same token on two VMs: answering by number alone is ambiguous.
    expect(() => host.respondToHttpCall(4, { headers: { ":status": "200" } })).toThrow(/several VMs/);
  });

  it("records the call (lower-cased headers, content-length for a body) and emits httpCall after the VM call", async () => {
    const host = await probeHost();
    const seen: number[] = [];
    host.on("httpCall", (c) => seen.push(c.token));
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-dispatch": CACHE, "x-test-dispatch-body": "hello" }), true);
    const [call] = host.getPendingHttpCalls();
    expect(seen).toEqual([call.token]);
    expect(call).toMatchObject({ cluster: CACHE, timeoutMs: 5000, rootContextId: 1, worker: 0 });
    expect(call.headers).toEqual([[":method", "GET"], [":path", "/cache"], [":authority", "cache.local"], ["host", "cache.local"], ["x-from", "probe"], ["content-length", "5"]]);
    expect(text(call.body)).toBe("hello");
    expect(host.getStreamState(s)).toBe("paused");
  });

  it("delivers the response to the root context; maps and body readable inside the callback only", async () => {
    const { host, s } = await dispatchWith({ "x-test-on-response": "reply" });
    const [call] = host.getPendingHttpCalls();
    host.respondToHttpCall(call.token, { headers: { ":status": "201", "x-mirror-cache": "hit" }, body: "cached" });
    expect(last(host, "http_call_response ")).toBe(`http_call_response 1 ${call.token} 2 6 0`);
    expect(last(host, "call_status ")).toBe("call_status 0:201 cache=0:hit body=0:cached");
    // During the local reply that followed, the call's headers are gone (BadArgument).
    expect(last(host, "response_headers ")).toMatch(/callhdr=2:$/);
    expect(text(host.getLocalResponse(s)!.body)).toBe("cached");
    expect(host.getPendingHttpCalls()).toEqual([]);
  });

  it("a reset gives 0/0/0 and proxy_get_status 11 \"reset\"", async () => {
    const { host } = await dispatchWith({ "x-test-on-response": "nothing" });
    const [call] = host.getPendingHttpCalls();
    host.failHttpCall(call.token, "reset");
    expect(last(host, "http_call_response ")).toBe(`http_call_response 1 ${call.token} 0 0 0`);
    expect(last(host, "status ")).toBe("status 11 reset");
  });

  it.each([
    ["no-healthy-upstream", "503", "no healthy upstream"],
    ["timeout", "504", "upstream request timeout"],
  ] as const)("%s is Envoy's own %s response, without x-mirror-cache", async (how, status, body) => {
    const { host } = await dispatchWith({ "x-test-on-response": "nothing" });
    const [call] = host.getPendingHttpCalls();
    host.failHttpCall(call.token, how);
    expect(last(host, "call_status ")).toBe(`call_status 0:${status} cache=1: body=0:${body}`);
    expect(last(host, "status ")).toBe("status 0 ");
    expect(envoyGeneratedResponse(how).headers).toEqual([[":status", status], ["content-length", String(body.length)], ["content-type", "text/plain"]]);
  });

  it("set_effective_context to a stream that is gone is BadArgument", async () => {
    const { host, s } = await dispatchWith({ "x-test-on-response": "continue" });
    const [call] = host.getPendingHttpCalls();
    host.resetHttpContext(s); // client went away: on_log/on_done/on_delete, context removed
    host.respondToHttpCall(call.token, { headers: { ":status": "200" } });
    expect(lines(host, "effective ")).toEqual(["effective 2 2"]);
  });
});
