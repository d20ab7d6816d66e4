// DESIGN.md invariant: a metadata-endpoint call is never rerouted or tagged. The apps call
// 169.254.169.254 through their sidecars; the sidecar's address table sends those bytes to a
// loopback stand-in (nothing leaves 127.0.0.1) while the filter sees the real authority and
// destination.address.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { METADATA_AUTHORITY } from "../../envoy/node-sandbox/sandbox.ts";
import { call, newRequestId, runSteps, startSandbox, type Sandbox, type Step } from "./support.ts";

describe("metadata calls pass untouched", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("both stacks reach the metadata stand-in directly, without a stack header, and the cache never sees them", async () => {
    const steps: Step[] = [0, 1, 2, 3].map((i) => ({
      kind: "pair",
      requestId: newRequestId(`md-${i}`),
      path: "/api/checkout",
      mirrorDelayMs: i % 2 ? 0 : 10,
    }));
    const results = await runSteps(sb, steps, 2);

    // each app made one metadata call per request; the stand-in saw all of them
    expect(sb.metadata.requests).toHaveLength(steps.length * 2);
    for (const req of sb.metadata.requests) {
      expect(req.stack).toBeUndefined();
      expect(req.host).toBe(METADATA_AUTHORITY);
      // exactly the headers the app sent (Host, accept, x-request-id), nothing added
      const endToEnd = req.headers.map(([k]) => k).filter((k) => k !== "connection" && k !== "keep-alive");
      expect(endToEnd.sort()).toEqual(["accept", "host", "x-request-id"]);
    }
    for (const sc of [sb.sidecars.test, sb.sidecars.mirror]) {
      const md = sc.records.filter((r) => r.authority === METADATA_AUTHORITY);
      expect(md).toHaveLength(steps.length);
      for (const r of md) {
        expect(r.outcome).toBe("passthrough");
        expect(r.dispatches).toHaveLength(0);
        expect(r.destinationAddress).toBe(`${METADATA_AUTHORITY}:80`);
        expect(r.forwardedTo).toBe(sb.metadata.address);
      }
      // no dispatch of any kind named the metadata endpoint
      const viaCache = sc.records.flatMap((r) => r.dispatches).filter((d) => d.authority.startsWith(METADATA_AUTHORITY));
      expect(viaCache).toHaveLength(0);
    }
    for (const r of results) {
      expect(call(r.test!, "metadata").status).toBe(200);
      expect(call(r.test!, "metadata").xMirrorCache).toBeNull();
      expect(call(r.mirror!, "metadata").xMirrorCache).toBeNull();
      expect(call(r.mirror!, "metadata").body).toBe(call(r.test!, "metadata").body);
    }
  });

  it("a metadata call keeps even a stack header the app sent itself (passthrough changes nothing)", async () => {
    sb.metadata.requests.length = 0;
    await sb.sendMirror(newRequestId("md-spoof"), "/api/checkout?calls=metadata&spoof=whatever");
    expect(sb.metadata.requests).toHaveLength(1);
    expect(sb.metadata.requests[0].stack).toBe("whatever");
  });

  it("a mirror metadata call without a request id still passes (no 503: it is not a tagged call)", async () => {
    sb.metadata.requests.length = 0;
    const r = await sb.sendMirror(undefined, "/api/checkout?calls=metadata");
    expect(call(r, "metadata").status).toBe(200);
    expect(sb.metadata.requests).toHaveLength(1);
  });

  it("metadata calls pass while the cache is down", async () => {
    sb.metadata.requests.length = 0;
    await sb.cache.stop();
    try {
      const r = await sb.sendPair(newRequestId("md-down"), { path: "/api/checkout?calls=metadata" });
      expect(call(r.test, "metadata").status).toBe(200);
      expect(call(r.mirror, "metadata").status).toBe(200);
      expect(sb.metadata.requests).toHaveLength(2);
    } finally {
      await sb.cache.start();
    }
  });
});
