// Stack-header spoofing by the application. Extends test/e2e (a mirror app sending
// `x-mirror-stack: test` with the cache up) and test/filter (the header is replaced): every spoof
// shape (repeated, empty, both values, comma list, case) on both stacks; the custom convention
// (`x-azar-mirror: false|true`) end to end with the cache up AND killed (the fail-closed path must
// not let a spoofed mirror through either); and the bypass route — the filter passes calls
// addressed to mirror-cache itself untouched, so a mirror app can call the cache directly with the
// test value; the service's caller-identity check (MIRROR_CACHE_IDENTITY, XFCC) refuses it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSandbox, type Sandbox } from "../../envoy/node-sandbox/sandbox.ts";
import { Action, ProxyWasmHost, type Header } from "../proxy-wasm-host/index.ts";
import { config, options } from "../filter/helpers.ts";
import { send, startService, type Service } from "../service/support/harness.ts";
import { startFaultUpstream, verdicts, type FaultUpstream } from "./support.ts";

const SPOOFS: Array<{ name: string; headers: (own: string, other: string, hdr: string) => Header[] }> = [
  { name: "the other stack's value", headers: (_o, other, h) => [[h, other]] },
  { name: "the value twice", headers: (_o, other, h) => [[h, other], [h, other]] },
  { name: "both values", headers: (own, other, h) => [[h, other], [h, own]] },
  { name: "an empty value", headers: (_o, _x, h) => [[h, ""]] },
  { name: "a comma list", headers: (own, other, h) => [[h, `${other},${own}`]] },
  { name: "another case", headers: (_o, other, h) => [[h, other.toUpperCase()]] },
];

describe("stack-header spoofing from the application", () => {
  describe("in the filter (emulator), every spoof shape, default and custom header", () => {
    for (const custom of [false, true]) {
      const hdr = custom ? "x-azar-mirror" : "x-mirror-stack";
      const values = custom ? { test: "false", mirror: "true" } : { test: "test", mirror: "mirror" };
      for (const stack of ["test", "mirror"] as const) {
        it(`${stack} stack, ${hdr}: the dispatch (and a fail-open) carries exactly one ${hdr}: ${values[stack]}`, async () => {
          const extra = custom ? { stack_header: hdr, stack_values: values } : {};
          const h = await ProxyWasmHost.create(options(config(stack, extra)));
          const own = values[stack];
          const other = values[stack === "test" ? "mirror" : "test"];
          for (const spoof of SPOOFS) {
            const s = h.initializeHttpContext();
            h.callOnRequestHeaders(s, [[":method", "GET"], [":path", "/v1"], [":authority", "api.example.com"], [":scheme", "http"], ["x-request-id", `spoof-${spoof.name}`], ...spoof.headers(own, other, hdr)], true);
            const call = h.getPendingHttpCalls().at(-1)!;
            expect(call.headers.filter(([k]) => k === hdr).map(([, v]) => v), spoof.name).toEqual([own]);
            h.failHttpCall(call, "reset"); // cache down: test fails open, mirror fails closed
            if (stack === "test") expect(h.getUpstreamRequest(s)!.headers.filter(([k]) => k === hdr).map(([, v]) => v), spoof.name).toEqual([own]);
            else {
              expect(h.getUpstreamRequest(s), spoof.name).toBeUndefined();
              expect(h.getLocalResponse(s)!.statusCode).toBe(503);
            }
            h.completeHttpContext(s);
          }
          expect(h.failed).toBe(false);
        });
      }
    }
  });

  describe("end to end with the custom convention (x-azar-mirror: false|true), cache up and killed", () => {
    let sb: Sandbox;
    beforeAll(async () => {
      const custom = { stack_header: "x-azar-mirror", stack_values: { test: "false", mirror: "true" } };
      sb = await startSandbox({
        cacheWaitMs: 2000,
        filterOverrides: { test: custom, mirror: custom, inbound: custom },
        cacheEnv: { MIRROR_CACHE_STACK_HEADER: "x-azar-mirror", MIRROR_CACHE_STACK_VALUES: "test=false,mirror=true" },
      });
    });
    afterAll(() => sb?.stop());
    const upstreamCalls = () => sb.sidecars.test.records.filter((r) => r.authority === sb.upstream.authority).length;

    it("a mirror app sending the test value and a test app sending the mirror value: still a pass/hit pair, the upstream sees no mirror", async () => {
      const rid = `rel-spoof-${Date.now()}`;
      const t = await sb.sendTest(rid, "/api/checkout?calls=items,order&spoof=true");
      const m = await sb.sendMirror(rid, "/api/checkout?calls=items,order&spoof=false");
      for (const d of verdicts(t.summary)) expect(d.cache).toBe("pass");
      const mv = verdicts(m.summary);
      for (const [i, d] of mv.entries()) {
        expect(d.cache).toBe("hit");
        expect(d.body).toBe(verdicts(t.summary)[i].body);
      }
      expect(sb.upstream.stats.byStack.true ?? 0).toBe(0);
      expect(sb.upstream.stats.total).toBe(upstreamCalls());
      for (const r of sb.sidecars.mirror.records) for (const d of r.dispatches) expect(d.stack).toBe("true");
    });

    it("with the cache killed: the spoofing mirror is refused (503 unavailable), the spoofing test app is served tagged false, never true", async () => {
      await sb.cache.stop(true);
      sb.upstream.reset();
      const rid = `rel-spoof-down-${Date.now()}`;
      const t = await sb.sendTest(rid, "/api/checkout?calls=items,order&spoof=true");
      const m = await sb.sendMirror(rid, "/api/checkout?calls=items,order&spoof=false");
      for (const d of verdicts(t.summary)) expect(d.status).toBe(200);
      for (const d of verdicts(m.summary)) expect([d.status, d.cache]).toEqual([503, "unavailable"]);
      expect(sb.upstream.stats.total).toBe(2); // the two test calls, failed open
      expect(sb.upstream.stats.byStack).toEqual({ false: 2 }); // exactly the test value, not the app's "true"
      expect(sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0).toBe(0);
      await sb.cache.start();
    }, 60_000);
  });

  describe("the bypass: a mirror app calling mirror-cache directly with the test value", () => {
    let up: FaultUpstream;
    let svc: Service;
    const MIRROR_XFCC = 'By=spiffe://cluster.local/ns/mesh-mirror/sa/mirror-cache;Hash=abc;Subject="";URI=spiffe://cluster.local/ns/shop/sa/api-mirror';
    beforeAll(async () => {
      up = await startFaultUpstream();
      svc = await startService({ MIRROR_CACHE_IDENTITY: "sa/api=test,sa/api-mirror=mirror", MIRROR_CACHE_WAIT_MS: "100" });
    });
    afterAll(async () => {
      await svc?.close();
      await up?.close();
    });

    it("the filter lets a call to the cache itself through untouched (contract) — and the service refuses it by the caller's identity", async () => {
      const h = await ProxyWasmHost.create(options(config("mirror")));
      const s = h.initializeHttpContext();
      const sent: Header[] = [[":method", "POST"], [":path", "/v1/charge"], [":authority", "mirror-cache.mesh-mirror.svc.cluster.local:8080"], [":scheme", "http"], ["x-request-id", "bypass"], ["x-mirror-stack", "test"]];
      expect(h.callOnRequestHeaders(s, sent, true)).toBe(Action.Continue);
      expect(h.getUpstreamRequest(s)!.headers).toEqual(sent); // reaches mirror-cache as a "test" call

      // what mirror-cache sees from the mirror pod (Istio adds XFCC with the caller's SPIFFE id)
      const r = await send(svc.port, { method: "POST", path: "/v1/charge", host: up.authority, stack: "test", rid: "bypass", body: "{}", headers: { "x-forwarded-client-cert": MIRROR_XFCC } });
      expect(r.status).toBe(400);
      expect(r.json().code).toBe("INVALID_STACK");
      expect(up.seen).toHaveLength(0);
      // and with no stack header at all, the identity makes it a mirror call: answered from the record (miss), never forwarded
      const r2 = await send(svc.port, { method: "POST", path: "/v1/charge", host: up.authority, rid: "bypass", body: "{}", headers: { "x-forwarded-client-cert": MIRROR_XFCC } });
      expect(r2.status).toBe(504);
      expect(r2.headers["x-mirror-cache"]).toBe("miss");
      expect(up.seen).toHaveLength(0);
    });
  });
});
