import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callKey, callTuple } from "../../service/key.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("body-too-large-413", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((_q, res, body) => res.end(`got ${body.length}`));
    svc = await startService({ MIRROR_CACHE_MAX_BODY_BYTES: "1024", MIRROR_CACHE_WAIT_MS: "100" });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("a body of exactly the limit is forwarded", async () => {
    const a = await send(svc.port, { method: "POST", host: up.authority, stack: "test", rid: rid(), body: Buffer.alloc(1024, 97) });
    expect(a.status).toBe(200);
    expect(a.text).toBe("got 1024");
  });

  it.each(["test", "mirror"])("a %s call declaring a larger Content-Length gets 413 BODY_TOO_LARGE, without x-mirror-cache (the filter's failure policy applies)", async (stack) => {
    const before = up.seen.length;
    const a = await send(svc.port, { method: "PUT", host: up.authority, stack, rid: rid(), body: Buffer.alloc(1025, 97) });
    expect(a.status).toBe(413);
    expect(a.headers["x-mirror-cache"]).toBeUndefined();
    expect(a.json().code).toBe("BODY_TOO_LARGE");
    expect(a.json().message).toContain("MIRROR_CACHE_MAX_BODY_BYTES");
    expect(up.seen.length).toBe(before);
  });

  it("a chunked body that grows past the limit gets 413, nothing is recorded and the claim is released", async () => {
    const id = rid();
    async function* big() {
      for (let i = 0; i < 8; i++) yield Buffer.alloc(256, 98);
    }
    const a = await send(svc.port, { method: "POST", path: "/upload", host: up.authority, stack: "test", rid: id, body: big(), headers: { "transfer-encoding": "chunked" } });
    expect(a.status).toBe(413);
    expect(a.json().code).toBe("BODY_TOO_LARGE");
    const key = callKey(callTuple(id, "POST", up.authority, "/upload"), 0);
    expect(await svc.store.get(key)).toBeUndefined();
    // released: a new claim on that key succeeds
    expect(await svc.store.claim(key, 1000)).toBe(true);
    // and the service is fine afterwards
    const ok = await send(svc.port, { method: "POST", host: up.authority, stack: "test", rid: rid(), body: "small" });
    expect(ok.status).toBe(200);
  });
});
