import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("nth-call-pairs-with-nth-call", () => {
  let up: Upstream;
  let svc: Service;
  let counter = 0;
  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(`${req.method} ${req.url} #${++counter}`));
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "2000", MIRROR_CACHE_KEY_IGNORE_QUERY: "ts,nonce" });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("the n-th mirror call of a tuple gets the n-th test call's answer", async () => {
    const id = rid();
    const tests: string[] = [];
    for (let i = 0; i < 3; i++) tests.push((await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/poll" })).text);
    expect(new Set(tests).size).toBe(3);
    const mirrors: string[] = [];
    for (let i = 0; i < 3; i++) mirrors.push((await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/poll" })).text);
    expect(mirrors).toEqual(tests);
  });

  it("interleaved stacks and tuples pair independently", async () => {
    const id = rid();
    const a1 = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/a" });
    const m1 = send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/a" });
    const b1 = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/b" });
    const m2 = send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/a" }); // waits for a2
    const mb = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/b" });
    const a2 = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/a" });
    expect((await m1).text).toBe(a1.text);
    expect(mb.text).toBe(b1.text);
    expect((await m2).text).toBe(a2.text);
  });

  it("method, authority, path and request id are all part of the key", async () => {
    const id = rid();
    const t = await send(svc.port, { method: "POST", host: up.authority, stack: "test", rid: id, path: "/k", body: "x" });
    await Promise.all(
      [
        { method: "PUT", rid: id, path: "/k" },
        { method: "POST", rid: rid(), path: "/k" },
        { method: "POST", rid: id, path: "/k2" },
        { method: "POST", rid: id, path: "/k?q=1" },
        { method: "POST", rid: id, path: "/k", host: `localhost:${up.port}` },
      ].map(async (other) => {
        const m = await send(svc.port, { host: up.authority, ...other, stack: "mirror", body: "x" });
        expect(m.headers["x-mirror-cache"]).toBe("miss");
      }),
    );
    // none of the above consumed the right key: the matching mirror call still hits n=0
    const m = await send(svc.port, { method: "POST", host: up.authority, stack: "mirror", rid: id, path: "/k", body: "x" });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe(t.text);
  }, 20_000);

  it("query parameters in MIRROR_CACHE_KEY_IGNORE_QUERY are left out of the key (but forwarded)", async () => {
    const id = rid();
    const t = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/q?a=1&ts=111&b=2&nonce=x" });
    expect(t.text).toContain("/q?a=1&ts=111&b=2&nonce=x");
    const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/q?a=1&ts=999&b=2" });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe(t.text);
  });

  it("the authority is compared without a trailing dot", async () => {
    const id = rid();
    const t = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/h" });
    const m = await send(svc.port, { host: `127.0.0.1.:${up.port}`, stack: "mirror", rid: id, path: "/h" });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe(t.text);
  });
});
