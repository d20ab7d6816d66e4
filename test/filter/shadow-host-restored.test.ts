// direction: "inbound": on the mirror stack, a :authority with Istio's -shadow suffix (before
// the port) is restored to the original host. Inbound never tags and never dispatches.
import { describe, expect, it } from "vitest";
import { Action } from "../proxy-wasm-host/index.ts";
import { counters, host, request, values } from "./helpers.ts";

async function authorityAfter(stack: "test" | "mirror", authority: string): Promise<string[]> {
  const h = await host(stack, { direction: "inbound" });
  const s = h.initializeHttpContext();
  expect(h.callOnRequestHeaders(s, request([], authority), true)).toBe(Action.Continue);
  expect(h.getPendingHttpCalls()).toHaveLength(0);
  return values(h.getUpstreamRequest(s)!.headers, ":authority");
}

describe("inbound, mirror stack", () => {
  for (const [shadow, original] of [
    ["reviews-shadow:9080", "reviews:9080"],
    ["reviews-shadow", "reviews"],
    ["reviews.default.svc.cluster.local-shadow:9080", "reviews.default.svc.cluster.local:9080"],
    ["reviews.default.svc.cluster.local-shadow", "reviews.default.svc.cluster.local"],
    ["API-SHADOW:8080", "API:8080"],
  ]) {
    it(`restores ${shadow} to ${original}`, async () => {
      expect(await authorityAfter("mirror", shadow)).toEqual([original]);
    });
  }

  for (const authority of ["reviews:9080", "reviews-shadow-api:9080", "-shadow", "shadow:80", "reviews-shadow:http"]) {
    it(`leaves ${JSON.stringify(authority)} alone`, async () => {
      expect(await authorityAfter("mirror", authority)).toEqual([authority]);
    });
  }

  it("counts restorations and changes nothing else", async () => {
    const h = await host("mirror", { direction: "inbound" });
    const s = h.initializeHttpContext();
    const sent = request([["x-mirror-stack", "test"]], "reviews-shadow:9080");
    h.callOnRequestHeaders(s, sent, true);
    const got = h.getUpstreamRequest(s)!.headers;
    expect(got.filter(([k]) => k !== ":authority")).toEqual(sent.filter(([k]) => k !== ":authority"));
    expect(counters(h)).toMatchObject({ shadow_restored: 1, tagged: 0, dispatched: 0, refused: 0 });
  });

  it("never refuses, even without a request id or with a body", async () => {
    const h = await host("mirror", { direction: "inbound" });
    const s = h.initializeHttpContext();
    expect(h.callOnRequestHeaders(s, [[":method", "POST"], [":path", "/"], [":authority", "a-shadow"]], false)).toBe(Action.Continue);
    expect(h.getLocalResponse(s)).toBeUndefined();
  });
});

describe("inbound, test stack", () => {
  it("leaves a -shadow host alone (only the mirror stack receives mirrored traffic)", async () => {
    expect(await authorityAfter("test", "reviews-shadow:9080")).toEqual(["reviews-shadow:9080"]);
  });
});
