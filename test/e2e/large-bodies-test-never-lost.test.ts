// A request body larger than the filter buffers (`max_body_bytes`): the test call must still
// reach its upstream (fail-open, DESIGN.md: "a test-stack call is never lost because the mirror
// machinery failed"), the mirror call is refused (503 unavailable).
//
// The sidecar runs the emulator with Envoy's default connection buffer limit (1 MiB): a filter that
// keeps a body buffered past it gets Envoy's own 413.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, newRequestId, startSandbox, type Sandbox } from "./support.ts";

async function bigOrderPair(sb: Sandbox, label: string, bytes: number) {
  const rid = newRequestId(label);
  const r = await sb.sendPair(rid, { path: `/api/checkout?calls=order&order_bytes=${bytes}` });
  return { rid, r };
}

describe("large request bodies, max_body_bytes below Envoy's buffer limit (512 KiB < 1 MiB)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    const small = { max_body_bytes: 512 * 1024 };
    sb = await startSandbox({ filterOverrides: { test: small, mirror: small } });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("a 700 KB test POST is served by its upstream (fail-open, tagged test); the mirror POST is refused", async () => {
    const { rid, r } = await bigOrderPair(sb, "big-700k", 700_000);
    expect(call(r.test, "order").status).toBe(200);
    expect(call(r.test, "order").xMirrorCache).toBeNull();
    expect(call(r.mirror, "order")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });
    const seen = sb.upstream.stats.requests.filter((x) => x.requestId === rid);
    expect(seen.map((x) => [x.stack, x.bodyBytes])).toEqual([["test", 700_000]]);
    expect(sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0).toBe(0);
  });

  it("a body of exactly max_body_bytes is still buffered and paired (equal is allowed)", async () => {
    const { rid, r } = await bigOrderPair(sb, "big-equal", 512 * 1024);
    expect(sb.upstream.stats.requests.find((x) => x.requestId === rid)?.bodyBytes).toBe(512 * 1024);
    expect(call(r.test, "order").xMirrorCache).toBe("pass");
    expect(call(r.mirror, "order").xMirrorCache).toBe("hit");
    expect(call(r.mirror, "order").body).toBe(call(r.test, "order").body);
  });
});

describe("large request bodies with the default configuration (max_body_bytes = 1 MiB = Envoy's buffer limit)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  // KNOWN BUG (reported to the filter owner): with the defaults the filter keeps buffering up to
  // 1 MiB, the next chunk overflows Envoy's 1 MiB decoder buffer and Envoy answers 413 itself: the
  // test call is lost. Fix in the filter: fail open at the headers when content-length exceeds
  // max_body_bytes, and keep max_body_bytes below the connection buffer limit (or raise
  // per_connection_buffer_limit_bytes in the Envoy/Istio config). `it.fails` flips to a failure
  // once that is fixed: then drop `.fails`.
  it.fails("a 1.5 MB test POST is still served by its upstream (not Envoy's 413)", async () => {
    const { r } = await bigOrderPair(sb, "big-default", 1_500_000);
    expect(call(r.test, "order").status).toBe(200);
    expect(call(r.mirror, "order")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });
  });
});
