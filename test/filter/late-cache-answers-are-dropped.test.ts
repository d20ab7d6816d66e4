// A cache answer that arrives after its stream ended (client went away) is dropped: the
// runtime only routes a response to a stream that is still alive (set_effective_context
// would fail for a dead one), and nothing traps.
import { describe, expect, it } from "vitest";
import { counters, host, onlyCall, request } from "./helpers.ts";

describe("a cache answer for a stream that is gone", () => {
  for (const end of ["reset", "complete"] as const) {
    it(`is dropped without a trap (stream ${end === "reset" ? "reset by the client" : "completed"})`, async () => {
      const h = await host("mirror");
      const s = h.initializeHttpContext();
      h.callOnRequestHeaders(s, request(), true);
      const call = onlyCall(h);
      if (end === "reset") h.resetHttpContext(s);
      else h.completeHttpContext(s);

      h.respondToHttpCall(call, { headers: [[":status", "200"], ["x-mirror-cache", "hit"]], body: "late" });
      expect(h.failed).toBe(false);
      expect(h.getLocalResponse(s)).toBeUndefined();
      expect(counters(h).answered).toBe(0);

      // The VM keeps serving.
      const next = h.initializeHttpContext();
      h.callOnRequestHeaders(next, request(), true);
      h.respondToHttpCall(onlyCall(h), { headers: [[":status", "200"], ["x-mirror-cache", "hit"]] });
      expect(h.getLocalResponse(next)?.statusCode).toBe(200);
    });
  }

  it("is dropped on a failed call too", async () => {
    const h = await host("test");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    const call = onlyCall(h);
    h.resetHttpContext(s);
    h.failHttpCall(call, "reset");
    expect(h.failed).toBe(false);
    expect(counters(h).failed_open).toBe(0);
  });
});
