// Fault: clients that go away mid-call — mirror callers waiting for their record, test callers
// while the upstream is slow, test callers halfway through a request body — against the real
// service child, and apps that go away mid-call behind the real filter (sidecars). Invariants: the
// service stays up and ready, counts `client_closed`, leaks no memory; a half-sent body leaves no
// record (a later mirror misses, it never gets a partial answer); an answered-but-abandoned test
// call is still recorded for the mirror; no mirror call ever reaches the upstream; the filter
// never traps and later calls are served normally.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SidecarHandle } from "../../envoy/node-sandbox/sidecar.ts";
import { http, MARKER, MiB, startFaultUpstream, startOutboundSidecars, startServiceProcess, viaSidecar, waitFor, type FaultUpstream, type ServiceProcess } from "./support.ts";

describe("client disconnect mid-call", () => {
  let svc: ServiceProcess;
  let fault: FaultUpstream;
  let test: SidecarHandle;
  let mirror: SidecarHandle;
  beforeAll(async () => {
    fault = await startFaultUpstream();
    svc = await startServiceProcess({ MIRROR_CACHE_WAIT_MS: "3000", MIRROR_CACHE_MAX_BODY_BYTES: String(4 * MiB) });
    ({ test, mirror } = await startOutboundSidecars(svc.port, { buffer_bodies: true }));
  });
  afterAll(async () => {
    await test?.stop();
    await mirror?.stop();
    await svc?.kill("SIGTERM"); // a graceful drain: no call may be left stuck (the chunked known bug held it)
    await fault?.close();
  });
  const host = () => fault.authority;
  const call = (stack: "test" | "mirror", rid: string, extra: Parameters<typeof http>[1] extends infer S ? Partial<S> : never = {}) =>
    http(svc.port, {
      target: "/ok",
      ...extra,
      headers: { host: host(), "x-mirror-stack": stack, "x-request-id": rid, ...(stack === "mirror" ? { [MARKER]: "mirror" } : {}), ...(extra.headers ?? {}) },
    });

  it("mirror callers that give up while waiting: counted client_closed, no waiter leak, the service unharmed", async () => {
    const rss0 = svc.rss()!;
    const before = (await svc.metrics())!;
    const N = 40;
    for (let round = 0; round < 5; round++) {
      const ids = Array.from({ length: N }, (_, i) => `rel-dc-m-${round}-${i}-${Date.now()}`);
      const answers = await Promise.all(ids.map((id) => call("mirror", id, { abortAfterMs: 150 })));
      expect(answers.every((a) => a === undefined)).toBe(true); // we hung up before any answer
    }
    expect(await waitFor(async () => (await svc.metrics())!.calls("mirror", "client_closed") - before.calls("mirror", "client_closed") === 5 * N, 20_000, 100)).toBe(true);
    const after = (await svc.metrics())!;
    expect(after.calls("mirror", "miss") - before.calls("mirror", "miss")).toBe(0); // they stopped waiting: no late answers
    expect(fault.markerCount("mirror")).toBe(0);
    expect(svc.alive).toBe(true);
    expect((await svc.readyz())!.status).toBe(200);
    expect(svc.rss()!).toBeLessThan(rss0 + 150 * MiB);
  }, 90_000);

  it("a test caller that hangs up while the upstream is slow: the answer is still recorded and replayed to the mirror", async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `rel-dc-slow-${i}-${Date.now()}`);
    const gone = await Promise.all(ids.map((id) => call("test", id, { target: "/slow?ms=400", abortAfterMs: 100 })));
    expect(gone.every((a) => a === undefined)).toBe(true);
    for (const id of ids) {
      const m = (await call("mirror", id, { target: "/slow?ms=400" }))!;
      expect(m.status).toBe(200);
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(JSON.parse(m.text)).toMatchObject({ slept: 400 });
    }
    expect(fault.seen.filter((s) => ids.includes(s.requestId!)).length).toBe(ids.length); // each test call once
    expect(fault.markerCount("mirror")).toBe(0);
  }, 60_000);

  async function halfBody(framing: "content-length" | "chunked", label: string, boundMs: number) {
    const before = (await svc.metrics())!;
    const ids = Array.from({ length: 10 }, (_, i) => `rel-dc-${label}-${i}-${Date.now()}`);
    const headers: Record<string, string> =
      framing === "chunked" ? { "transfer-encoding": "chunked" } : { "content-length": String(1024 * 1024) };
    await Promise.all(
      ids.map((id) =>
        call("test", id, {
          method: "POST",
          target: "/ok",
          headers: { ...headers, "content-type": "application/octet-stream" },
          partialBody: Buffer.alloc(64 * 1024, 0x62),
          abortAfterMs: 150,
        }),
      ),
    );
    const closed = await waitFor(async () => (await svc.metrics())!.calls("test", "client_closed") - before.calls("test", "client_closed") === ids.length, boundMs, 100);
    return { ids, closed };
  }

  it("a test caller that hangs up halfway through its body (content-length): nothing recorded, the claim released, a later mirror misses", async () => {
    const { ids, closed } = await halfBody("content-length", "cl", 20_000);
    expect(closed).toBe(true);
    // no record: the mirror twin waits its bound and misses (it never gets a partial answer)
    const misses = await Promise.all(ids.slice(0, 3).map((id) => call("mirror", id, { method: "POST", target: "/ok", body: "x" })));
    for (const m of misses) {
      expect(m!.status).toBe(504);
      expect(m!.headers["x-mirror-cache"]).toBe("miss");
    }
    // the upstream never answered a half body, and never saw the mirror
    expect(fault.seen.filter((s) => ids.includes(s.requestId!)).length).toBe(0);
    expect(fault.markerCount("mirror")).toBe(0);
    expect(svc.alive).toBe(true);
  }, 60_000);

  // Was a known bug (it.fails): with a chunked body, service/handle-test-call.ts forwarded
  // `req.pipe(limitBody(...))`; `pipe` does not propagate the client's abort, so the limiter never
  // ended, the upstream request stayed open and the call was never concluded (no client_closed, the
  // claim held until its TTL, a graceful drain waiting for it). The limiter is now destroyed when
  // the request closes unfinished.
  it("a test caller that hangs up halfway through a CHUNKED body: the call is concluded (client_closed)", async () => {
    const { ids, closed } = await halfBody("chunked", "chunked", 5_000);
    expect(closed).toBe(true);
    // as with content-length: no record (the mirror twin misses), the upstream never got a whole request
    const misses = await Promise.all(ids.slice(0, 3).map((id) => call("mirror", id, { method: "POST", target: "/ok", body: "x" })));
    for (const m of misses) expect([m!.status, m!.headers["x-mirror-cache"]]).toEqual([504, "miss"]);
    expect(fault.seen.filter((s) => ids.includes(s.requestId!)).length).toBe(0);
    expect(svc.alive).toBe(true);
  }, 60_000);

  it("apps that hang up mid-call behind the filter: no trap, no sidecar error, later calls served, mirror never upstream", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `rel-dc-app-${i}-${Date.now()}`);
    await Promise.all(
      ids.flatMap((id) => [
        viaSidecar(test.address, { authority: host(), path: "/slow?ms=500", headers: { "x-request-id": id }, abortAfterMs: 100 }),
        viaSidecar(mirror.address, { authority: host(), path: "/slow?ms=500", headers: { "x-request-id": `${id}-orphan`, [MARKER]: "mirror" }, abortAfterMs: 100 }),
        viaSidecar(test.address, { method: "POST", authority: host(), path: "/ok", headers: { "x-request-id": `${id}-post` }, body: Buffer.alloc(256 * 1024, 1), abortAfterMs: 5 }),
      ]),
    );
    // dispatches answered after their streams ended are handled by the filter without a trap
    await waitFor(() => fault.inFlight === 0, 10_000);
    await new Promise((r) => setTimeout(r, 600));
    expect(test.stats.errors).toEqual([]);
    expect(mirror.stats.errors).toEqual([]);
    // later calls through the same filters work normally
    const rid = `rel-dc-after-${Date.now()}`;
    const t = (await viaSidecar(test.address, { authority: host(), path: "/ok", headers: { "x-request-id": rid } }))!;
    const m = (await viaSidecar(mirror.address, { authority: host(), path: "/ok", headers: { "x-request-id": rid, [MARKER]: "mirror" } }))!;
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.body.equals(t.body)).toBe(true);
    expect(mirror.stats.forwards[host()] ?? 0).toBe(0);
    expect(mirror.counter("mesh_mirror.failed_open")).toBe(0);
    expect(fault.markerCount("mirror")).toBe(0);
    expect(svc.alive).toBe(true);
    expect(svc.exits).toEqual([]);
  }, 60_000);
});
