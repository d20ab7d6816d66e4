import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, type Service } from "./support/harness.ts";
import { mapResolver, spyConnector } from "./support/spies.ts";

describe("own-address-always-refused", () => {
  let svc: Service;
  const connector = spyConnector();
  beforeAll(async () => {
    // The allow list lifts every default deny — the service's own address stays refused.
    svc = await startService({ MIRROR_CACHE_EGRESS_ALLOW: "0.0.0.0/0,::/0,127.0.0.0/8" }, { connector, resolver: mapResolver({ "me.test": "127.0.0.1", "me6.test": "::ffff:127.0.0.1" }) });
  });
  afterAll(() => svc.close());

  it.each([
    ["its listen address and port", () => `127.0.0.1:${svc.port}`],
    ["a name resolving to it", () => `me.test:${svc.port}`],
    ["an IPv4-mapped IPv6 name resolving to it", () => `me6.test:${svc.port}`],
    ["the unspecified address on its port", () => `0.0.0.0:${svc.port}`],
  ])("refuses %s, allow list or not, without connecting", async (_what, host) => {
    const a = await send(svc.port, { host: host(), stack: "test", rid: rid(), path: "/loop" });
    expect(a.status).toBe(403);
    expect(a.headers["x-mirror-cache"]).toBe("denied");
    expect(a.json().code).toBe("EGRESS_DENIED");
    expect(a.json().message).toMatch(/own address|0\.0\.0\.0/);
    expect(connector.attempts).toHaveLength(0);
  });
});
