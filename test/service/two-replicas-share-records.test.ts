// Two mirror-cache replicas (two buildApp instances, each with its own Redis store connection) on
// one Redis: what one records, the other replays — byte for byte — and the upstream is called
// once per test call, whichever replica takes it.
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../../service/store/redis.ts";
import { rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

describe("two-replicas-share-records", () => {
  let up: Upstream;
  let a: Service;
  let b: Service;
  const sent = new Map<string, Buffer[]>(); // url → bodies the upstream answered, in order

  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      const body = randomBytes(req.url!.includes("big") ? 256 * 1024 : 4096); // fresh bytes per call
      const list = sent.get(req.url!) ?? [];
      list.push(body);
      sent.set(req.url!, list);
      res.writeHead(200, { "content-type": "application/octet-stream", "x-call": String(list.length) });
      res.end(body);
    });
    const url = inject("redisUrl");
    const keyPrefix = `two-replicas:${randomUUID()}:`;
    const env = { MIRROR_CACHE_STORE: "redis", REDIS_URL: url, MIRROR_CACHE_WAIT_MS: "2000" };
    a = await startService(env, { store: createRedisStore({ url, keyPrefix }) });
    b = await startService(env, { store: createRedisStore({ url, keyPrefix }) });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await up?.close();
  });

  const calls = (url: string) => up.seen.filter((s) => s.url === url).length;

  it("test-call-on-one-replica-then-mirror-call-on-the-other-is-a-byte-identical-hit", async () => {
    const id = rid("two");
    const path = `/a/${id}?q=1`;
    const t = await send(a.port, { host: up.authority, path, stack: "test", rid: id });
    expect(t.status).toBe(200);
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    const m = await send(b.port, { host: up.authority, path, stack: "mirror", rid: id });
    expect(m.status).toBe(200);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.headers["x-call"]).toBe("1");
    expect(Buffer.compare(m.body, t.body)).toBe(0);
    expect(Buffer.compare(m.body, sent.get(path)![0])).toBe(0);
    expect(calls(path)).toBe(1);
  });

  it("a-large-binary-body-crosses-replicas-byte-identical", async () => {
    const id = rid("two-big");
    const path = `/big/${id}`;
    const t = await send(b.port, { host: up.authority, path, stack: "test", rid: id });
    const m = await send(a.port, { host: up.authority, path, stack: "mirror", rid: id });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.body.length).toBe(256 * 1024);
    expect(Buffer.compare(m.body, t.body)).toBe(0);
    expect(calls(path)).toBe(1);
  });

  it("mirror-call-waiting-on-one-replica-is-answered-when-the-test-call-lands-on-the-other", async () => {
    const id = rid("two-wait");
    const path = `/late/${id}`;
    const mirror = send(b.port, { host: up.authority, path, stack: "mirror", rid: id });
    await sleep(200); // the mirror call is waiting on replica b
    const t = await send(a.port, { host: up.authority, path, stack: "test", rid: id });
    const m = await mirror;
    expect(m.status).toBe(200);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(Buffer.compare(m.body, t.body)).toBe(0);
    expect(calls(path)).toBe(1);
  });

  it("nth-test-call-pairs-with-nth-mirror-call-whichever-replica-takes-each", async () => {
    const id = rid("two-nth");
    const path = `/nth/${id}`;
    const t0 = await send(a.port, { host: up.authority, path, stack: "test", rid: id });
    const t1 = await send(b.port, { host: up.authority, path, stack: "test", rid: id });
    const m0 = await send(b.port, { host: up.authority, path, stack: "mirror", rid: id });
    const m1 = await send(a.port, { host: up.authority, path, stack: "mirror", rid: id });
    expect([m0.headers["x-mirror-cache"], m1.headers["x-mirror-cache"]]).toEqual(["hit", "hit"]);
    expect(Buffer.compare(m0.body, t0.body)).toBe(0);
    expect(Buffer.compare(m1.body, t1.body)).toBe(0);
    expect(Buffer.compare(t0.body, t1.body)).not.toBe(0);
    expect(calls(path)).toBe(2);
  });

  it("mirror-calls-through-either-replica-never-reach-the-upstream", async () => {
    const id = rid("two-none");
    const path = `/none/${id}`;
    const [ma, mb] = await Promise.all([
      send(a.port, { host: up.authority, path, stack: "mirror", rid: id }),
      send(b.port, { host: up.authority, path: `${path}?other`, stack: "mirror", rid: id }),
    ]);
    expect(ma.status).toBe(504);
    expect(mb.status).toBe(504);
    expect(calls(path) + calls(`${path}?other`)).toBe(0);
  }, 20_000);
});
