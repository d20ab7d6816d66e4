// With the minimal runtime the collector runs at the end of every stream (proxy_on_delete):
// a VM's linear memory must not grow with the number of requests.
import { describe, expect, it } from "vitest";
import type { ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { host, post, request } from "./helpers.ts";

function tagged(h: ProxyWasmHost, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request([["x-trace", "t".repeat(i % 200)]]), true);
    const [call] = h.getPendingHttpCalls();
    if (i % 3 === 0) h.failHttpCall(call, "reset");
    else h.respondToHttpCall(call, { headers: [[":status", "200"], ["x-mirror-cache", "pass"]], body: "b".repeat(i % 500) });
    h.releaseHttpContext(s);
  }
}

function buffered(h: ProxyWasmHost, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, post(), false);
    h.callOnRequestBody(s, "x".repeat(100 + (i % 900)), false);
    h.callOnRequestBody(s, "y".repeat(50), true);
    const [call] = h.getPendingHttpCalls();
    h.respondToHttpCall(call, { headers: [[":status", "200"], ["x-mirror-cache", "hit"]], body: "ok" });
    h.releaseHttpContext(s);
  }
}

describe("a VM's memory", () => {
  it("stays flat over thousands of tagged requests", async () => {
    const h = await host("test");
    tagged(h, 1000);
    const warm = h.getMemorySize();
    tagged(h, 4000);
    expect(h.getMemorySize()).toBe(warm);
  });

  it("stays flat over thousands of buffered bodies", async () => {
    const h = await host("mirror", { buffer_bodies: true }, (o) => o.withAllowOnHeadersStopIteration(true));
    buffered(h, 500);
    const warm = h.getMemorySize();
    buffered(h, 2000);
    expect(h.getMemorySize()).toBe(warm);
  });
});
