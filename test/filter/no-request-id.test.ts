// CONTRACTS.md "No request id" (absent, or present but empty): the test stack continues
// untouched to its upstream; the mirror stack answers 503 no-request-id.
import { describe, expect, it } from "vitest";
import { counters, host, request, values, without } from "./helpers.ts";

const cases: Array<[string, (h: ReturnType<typeof request>) => ReturnType<typeof request>]> = [
  ["absent", (hs) => without(hs, "x-request-id")],
  ["empty", (hs) => [...without(hs, "x-request-id"), ["x-request-id", ""]]],
];

describe("a call without a request id", () => {
  for (const [label, strip] of cases) {
    it(`goes untagged to its upstream on the test stack (${label})`, async () => {
      const h = await host("test");
      const s = h.initializeHttpContext();
      const sent = strip(request());
      h.callOnRequestHeaders(s, sent, true);
      expect(h.getPendingHttpCalls()).toHaveLength(0);
      const up = h.getUpstreamRequest(s);
      expect(up?.headers).toEqual(sent);
      expect(counters(h)).toMatchObject({ no_request_id: 1, tagged: 0, dispatched: 0 });
    });

    it(`is refused with 503 no-request-id on the mirror stack (${label})`, async () => {
      const h = await host("mirror");
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, strip(request()), true);
      expect(h.getPendingHttpCalls()).toHaveLength(0);
      expect(h.getUpstreamRequest(s)).toBeUndefined();
      const reply = h.getLocalResponse(s);
      expect(reply?.statusCode).toBe(503);
      expect(values(reply!.headers, "x-mirror-cache")).toEqual(["no-request-id"]);
      expect(counters(h)).toMatchObject({ no_request_id: 1, refused: 1 });
    });
  }

  it("still loses a stack header the app tried to set (no spoofing)", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, without(request([["x-mirror-stack", "mirror"]]), "x-request-id"), true);
    expect(values(h.getUpstreamRequest(s)!.headers, "x-mirror-stack")).toEqual([]);
  });

  it("uses the configured request id header", async () => {
    const h = await host("mirror", { request_id_header: "x-pairing" });
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true); // has x-request-id, not x-pairing
    expect(values(h.getLocalResponse(s)!.headers, "x-mirror-cache")).toEqual(["no-request-id"]);
  });
});
