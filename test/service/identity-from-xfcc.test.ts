import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientSpiffe, parseXfcc, stackForIdentity } from "../../service/identity.ts";
import { testConfig } from "./support/harness.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

const TEST_ID = "spiffe://cluster.local/ns/shop-test/sa/api";
const MIRROR_ID = "spiffe://cluster.local/ns/shop/sa/api-mirror";
const SELF = "spiffe://cluster.local/ns/mesh-mirror/sa/mirror-cache";
const xfcc = (uri: string) => `By=${SELF};Hash=0123abcd;Subject="";URI=${uri}`;

describe("identity-from-xfcc", () => {
  describe("parsing", () => {
    it("reads Istio's element and its SPIFFE URI", () => {
      expect(clientSpiffe(xfcc(TEST_ID))).toMatchObject({ ns: "shop-test", sa: "api", trustDomain: "cluster.local" });
    });
    it("uses the last element (the immediate client) of several", () => {
      const h = `By=spiffe://a/ns/x/sa/y;URI=spiffe://a/ns/far/sa/away,${xfcc(MIRROR_ID)}`;
      expect(clientSpiffe(h)?.uri).toBe(MIRROR_ID);
    });
    it("handles quoted values with commas, semicolons, equals and escaped quotes", () => {
      const h = `By=${SELF};Subject="CN=a,O=\\"Acme; Inc\\"";URI=${TEST_ID}`;
      const els = parseXfcc(h)!;
      expect(els).toHaveLength(1);
      expect(els[0].subject).toEqual(['CN=a,O="Acme; Inc"']);
      expect(clientSpiffe(h)?.ns).toBe("shop-test");
    });
    it("a quoted element with a comma stays one element", () => {
      const h = `By=x;URI=spiffe://td/ns/a/sa/b;Subject="O=x,CN=y",By=z;URI=${TEST_ID}`;
      expect(parseXfcc(h)).toHaveLength(2);
      expect(clientSpiffe(h)?.uri).toBe(TEST_ID);
    });
    it.each(['By=x;URI="spiffe://td/ns/a/sa/b', "By", "URI=https://example.com/", "URI=spiffe://td/ns/a", ""])("yields no identity for %j", (h) => {
      expect(clientSpiffe(h)).toBeNull();
    });
    it("maps the most specific rule", () => {
      const rules = testConfig({ MIRROR_CACHE_IDENTITY: "ns/shop=test,sa/api-mirror=mirror,ns/shop/sa/special=mirror" }).identity;
      expect(stackForIdentity(rules, { uri: "", trustDomain: "", ns: "shop", sa: "api" })).toBe("test");
      expect(stackForIdentity(rules, { uri: "", trustDomain: "", ns: "shop", sa: "api-mirror" })).toBe("mirror");
      expect(stackForIdentity(rules, { uri: "", trustDomain: "", ns: "shop", sa: "special" })).toBe("mirror");
      expect(stackForIdentity(rules, { uri: "", trustDomain: "", ns: "other", sa: "api" })).toBeUndefined();
    });
  });

  describe("through the service", () => {
    let up: Upstream;
    let svc: Service;
    beforeAll(async () => {
      up = await startUpstream((req, res) => res.end(`seen ${req.url}`));
      svc = await startService({ MIRROR_CACHE_IDENTITY: "ns/shop-test=test,sa/api-mirror=mirror", MIRROR_CACHE_WAIT_MS: "200" });
    });
    afterAll(async () => {
      await svc.close();
      await up.close();
    });

    it("the identity alone supplies the stack", async () => {
      const id = rid();
      const t = await send(svc.port, { host: up.authority, rid: id, headers: { "x-forwarded-client-cert": xfcc(TEST_ID) } });
      expect(t.headers["x-mirror-cache"]).toBe("pass");
      const m = await send(svc.port, { host: up.authority, rid: id, headers: { "x-forwarded-client-cert": xfcc(MIRROR_ID) } });
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(up.seen).toHaveLength(1);
    });

    it("a stack header agreeing with the identity is fine", async () => {
      const a = await send(svc.port, { host: up.authority, rid: rid(), stack: "test", headers: { "x-forwarded-client-cert": xfcc(TEST_ID) } });
      expect(a.headers["x-mirror-cache"]).toBe("pass");
    });

    it("a stack header contradicting the identity is 400 INVALID_STACK saying why", async () => {
      const before = up.seen.length;
      const a = await send(svc.port, { host: up.authority, rid: rid(), stack: "test", headers: { "x-forwarded-client-cert": xfcc(MIRROR_ID) } });
      expect(a.status).toBe(400);
      expect(a.headers["x-mirror-cache"]).toBe("invalid");
      const j = a.json();
      expect(j.code).toBe("INVALID_STACK");
      expect(j.message).toContain(MIRROR_ID);
      expect(j.message).toContain("mirror");
      expect(up.seen.length).toBe(before);
    });

    it("an identity no rule maps leaves the header in charge; without either it is 400", async () => {
      const other = xfcc("spiffe://cluster.local/ns/elsewhere/sa/x");
      const a = await send(svc.port, { host: up.authority, rid: rid(), stack: "test", headers: { "x-forwarded-client-cert": other } });
      expect(a.headers["x-mirror-cache"]).toBe("pass");
      const b = await send(svc.port, { host: up.authority, rid: rid(), headers: { "x-forwarded-client-cert": other } });
      expect(b.status).toBe(400);
      expect(b.json().code).toBe("INVALID_STACK");
    });

    it("probes without a stack header stay probes even with an identity", async () => {
      const a = await send(svc.port, { path: "/healthz", headers: { "x-forwarded-client-cert": xfcc(TEST_ID) } });
      expect(a.status).toBe(200);
      expect(a.json()).toEqual({ status: "ok" });
    });
  });
});
