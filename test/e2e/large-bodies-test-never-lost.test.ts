// A request body larger than the filter buffers (`max_body_bytes`): the test call must still
// reach its upstream (fail-open, DESIGN.md: "a test-stack call is never lost because the mirror
// machinery failed"), the mirror call is refused (503 unavailable).
//
// The sidecars run the emulator with a connection buffer limit: a body buffered past it gets
// Envoy's own 413 (Envoy checks the limit before the filter's body callback sees the chunk). The
// first two suites pin Envoy's default (1 MiB, a deployment that did not raise it); the last one
// runs with the shipped configs' limit (2 MiB, SHIPPED_BUFFER_LIMIT_BYTES), as startSandbox does
// by default. The app sends content-length, so the filter decides at the headers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, newRequestId, startSandbox, type Sandbox } from "./support.ts";

const ENVOY_DEFAULT_BUFFER_LIMIT = 1 << 20;
const MIB = 1024 * 1024;

async function bigOrderPair(sb: Sandbox, label: string, bytes: number) {
  const rid = newRequestId(label);
  const r = await sb.sendPair(rid, { path: `/api/checkout?calls=order&order_bytes=${bytes}` });
  return { rid, r };
}

describe("large request bodies, max_body_bytes below Envoy's buffer limit (512 KiB < 1 MiB)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    const small = { max_body_bytes: 512 * 1024 };
    sb = await startSandbox({ filterOverrides: { test: small, mirror: small }, bufferLimitBytes: ENVOY_DEFAULT_BUFFER_LIMIT });
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

/** Over max_body_bytes: the test call reaches its upstream once, with its whole body, tagged test
 * (not Envoy's 413); the mirror call is refused 503 unavailable and reaches nothing. */
async function expectTestServedMirrorRefused(sb: Sandbox, label: string, bytes: number) {
  const { rid, r } = await bigOrderPair(sb, label, bytes);
  expect(call(r.test, "order").status).toBe(200);
  expect(call(r.mirror, "order")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });
  const seen = sb.upstream.stats.requests.filter((x) => x.requestId === rid);
  expect(seen.map((x) => [x.stack, x.bodyBytes])).toEqual([["test", bytes]]);
  // The mirror sidecar let none of this pair's calls through to a real destination.
  const mirrorOrders = sb.sidecars.mirror.records.filter((x) => x.requestId === rid && x.method === "POST");
  expect(mirrorOrders.map((x) => [x.outcome, x.forwardedTo])).toEqual([["refused", undefined]]);
}

describe("large request bodies with the default configuration (max_body_bytes = 1 MiB = Envoy's default buffer limit)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ bufferLimitBytes: ENVOY_DEFAULT_BUFFER_LIMIT });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  // Was a known bug (it.fails): the filter kept buffering up to 1 MiB, the next chunk overflowed
  // Envoy's 1 MiB decoder buffer and Envoy answered 413 itself, so the test call was lost. The
  // filter now applies the fail policy at the headers when content-length exceeds max_body_bytes.
  it("a 1.5 MB test POST is still served by its upstream (not Envoy's 413)", async () => {
    const { r } = await bigOrderPair(sb, "big-default", 1_500_000);
    expect(call(r.test, "order").status).toBe(200);
    expect(call(r.mirror, "order")).toMatchObject({ status: 503, xMirrorCache: "unavailable" });
  });

  for (const bytes of [MIB + 1, 1_500_000, 2 * MIB]) {
    it(`a ${bytes}-byte test POST reaches its upstream whole and tagged; the mirror POST gets 503 unavailable`, async () => {
      await expectTestServedMirrorRefused(sb, `big-default-${bytes}`, bytes);
    });
  }

  it("a body of exactly 1 MiB is buffered and paired (fits Envoy's 1 MiB buffer)", async () => {
    const { rid, r } = await bigOrderPair(sb, "big-default-equal", MIB);
    expect(sb.upstream.stats.requests.find((x) => x.requestId === rid)?.bodyBytes).toBe(MIB);
    expect(call(r.test, "order").xMirrorCache).toBe("pass");
    expect(call(r.mirror, "order").xMirrorCache).toBe("hit");
  });
});

describe("large request bodies with the shipped configuration (1 MiB max_body_bytes, 2 MiB listener buffer limit)", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  for (const bytes of [MIB + 1, 1_500_000, 2 * MIB]) {
    it(`a ${bytes}-byte test POST reaches its upstream whole and tagged; the mirror POST gets 503 unavailable`, async () => {
      await expectTestServedMirrorRefused(sb, `big-shipped-${bytes}`, bytes);
    });
  }
});
