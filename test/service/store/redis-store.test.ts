// The Redis store against a real redis-server: the shared conformance suite (a fresh key prefix
// per case on the run's shared server), then what only a shared store promises — two store
// instances on one Redis behave as two replicas — and what happens when Redis dies and returns.
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { callKey } from "../../../service/key.ts";
import { Redis } from "ioredis";
import { createRedisStore, LOOKUP_BATCH } from "../../../service/store/redis.ts";
import { StoreUnavailableError, type CacheStore, type Lookup, type StoredResponse } from "../../../service/store/types.ts";
import { startRedis, type RedisServer } from "../../support/redis-server.ts";
import { describeCacheStore } from "./conformance.ts";

const redisUrl = inject("redisUrl");
const prefix = () => `mm-test:${randomUUID()}:`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rec = (body: string): StoredResponse => ({ status: 200, headers: [["content-type", "text/plain"]], body: Buffer.from(body) });

describeCacheStore("redis", () => createRedisStore({ url: redisUrl, keyPrefix: prefix() }));

describe("redis store: two replicas on one Redis", () => {
  const stores: CacheStore[] = [];
  const pair = () => {
    const p = prefix();
    const a = createRedisStore({ url: redisUrl, keyPrefix: p });
    const b = createRedisStore({ url: redisUrl, keyPrefix: p });
    stores.push(a, b);
    return [a, b] as const;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it("put-on-one-replica-wakes-a-wait-on-the-other", async () => {
    const [a, b] = pair();
    const waiting = b.wait("k", 5_000);
    await sleep(50);
    await a.put("k", rec("across"), 60_000);
    expect((await waiting)?.body.toString()).toBe("across");
  });

  it("a-put-right-after-the-wait-starts-is-not-lost", async () => {
    const [a, b] = pair();
    for (let i = 0; i < 20; i++) {
      const waiting = b.wait(`race-${i}`, 5_000);
      await a.put(`race-${i}`, rec(`v${i}`), 60_000);
      expect((await waiting)?.body.toString()).toBe(`v${i}`);
    }
  });

  it("a-claim-on-one-replica-blocks-the-other-until-released", async () => {
    const [a, b] = pair();
    const [wa, wb] = await Promise.all([a.claim("c", 60_000), b.claim("c", 60_000)]);
    expect([wa, wb].filter(Boolean)).toHaveLength(1);
    const winner = wa ? a : b;
    const loser = wa ? b : a;
    expect(await loser.claim("c", 60_000)).toBe(false);
    await winner.release("c");
    expect(await loser.claim("c", 60_000)).toBe(true);
  });

  it("sequence-is-shared-and-atomic-across-replicas", async () => {
    const [a, b] = pair();
    const ns = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).sequence("test", "tuple", 60_000)));
    expect([...ns].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("a-record-put-on-one-replica-is-found-by-a-lookup-on-the-other", async () => {
    const [a, b] = pair();
    const t = "rid-1\nGET\napi.example.com\n/v1/x?y=1";
    expect(await a.sequence("test", t, 60_000)).toBe(0);
    await a.put(callKey(t, 0), rec("paired"), 60_000);
    const l = await b.lookup("mirror", t, 60_000);
    expect(l.key).toBe(callKey(t, 0));
    expect(l.record?.body.toString()).toBe("paired");
    // the mirror counter is shared too: the other replica's next lookup is n = 1
    expect(await a.lookup("mirror", t, 60_000)).toEqual({ key: callKey(t, 1), record: undefined });
  });

  it("lookup-and-begin-use-an-ioredis-key-prefix-too", async () => {
    const p = prefix();
    const a = createRedisStore({ url: redisUrl, keyPrefix: p, redis: { keyPrefix: "outer:" } });
    stores.push(a);
    await a.put(callKey("t", 0), rec("prefixed"), 60_000);
    expect((await a.lookup("mirror", "t", 60_000)).record?.body.toString()).toBe("prefixed");
    expect(await a.sequence("mirror", "t", 60_000)).toBe(1);
    // begin's claim, built inside its script, is the key claim() sees under the same prefixes
    const b = await a.begin("t", 60_000, 60_000);
    expect(b).toEqual({ key: callKey("t", 0), won: true });
    expect(await a.claim(b.key, 60_000)).toBe(false);
  });

  it("replicas-with-different-prefixes-do-not-see-each-other", async () => {
    const a = createRedisStore({ url: redisUrl, keyPrefix: prefix() });
    const b = createRedisStore({ url: redisUrl, keyPrefix: prefix() });
    stores.push(a, b);
    await a.put("k", rec("mine"), 60_000);
    expect(await b.get("k")).toBeUndefined();
    expect(await b.wait("k", 100)).toBeUndefined();
    expect(await b.claim("k", 60_000)).toBe(true);
    expect(await a.claim("k", 60_000)).toBe(true);
  });

  it("stats-count-what-this-replica-wrote", async () => {
    const [a, b] = pair();
    await a.put("k1", rec("x"), 60_000);
    await a.put("k2", rec("y"), 100);
    expect(a.stats().entries).toBe(2);
    expect(a.stats().bytes).toBeGreaterThan(2);
    expect(b.stats()).toEqual({ entries: 0, bytes: 0 });
    await sleep(1_200);
    expect(a.stats().entries).toBe(1);
  });
});

describe("redis store: lookups of one event-loop turn share one script call", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis(); // its own server: the test counts the script calls Redis ran
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it("each-lookup-gets-its-own-n-and-record-across-several-batches-and-a-corrupt-record-fails-only-its-call", async () => {
    const p = prefix();
    const store = createRedisStore({ url: server.url, keyPrefix: p });
    const raw = new Redis(server.url);
    try {
      const count = LOOKUP_BATCH * 2 + 7;
      const tuple = (i: number) => `rid-${i % 50}\nGET\napi.example\n/item/${i}`;
      for (let i = 0; i < count; i++) {
        expect(await store.sequence("test", tuple(i), 60_000)).toBe(0);
        if (i % 3 !== 0) await store.put(callKey(tuple(i), 0), rec(`body-${i}`), 60_000);
      }
      await raw.set(`${p}r:${callKey(tuple(1), 0)}`, "not a record"); // corrupt
      const before = await scriptCalls(raw);
      // all in one turn; tuple 2 twice: n = 0 then n = 1
      const results = await Promise.allSettled([...Array.from({ length: count }, (_, i) => store.lookup("mirror", tuple(i), 60_000)), store.lookup("mirror", tuple(2), 60_000)]);
      expect((await scriptCalls(raw)) - before).toBe(Math.ceil((count + 1) / LOOKUP_BATCH));
      for (let i = 0; i < count; i++) {
        const r = results[i];
        if (i === 1) {
          expect(r.status).toBe("rejected");
          continue;
        }
        expect(r.status).toBe("fulfilled");
        const l = (r as PromiseFulfilledResult<Lookup>).value;
        expect(l.key).toBe(callKey(tuple(i), 0));
        expect(l.record?.body.toString()).toBe(i % 3 === 0 ? undefined : `body-${i}`);
      }
      expect((results[count] as PromiseFulfilledResult<Lookup>).value).toEqual({ key: callKey(tuple(2), 1), record: undefined });
    } finally {
      raw.disconnect();
      await store.close();
    }
  });
});

/** EVAL + EVALSHA calls Redis has run. */
async function scriptCalls(raw: Redis): Promise<number> {
  const info = await raw.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/cmdstat_(?:eval|evalsha):calls=(\d+)/g)) n += Number(m[1]);
  return n;
}

describe("redis store: Redis dies and comes back", () => {
  let server: RedisServer;
  const stores: CacheStore[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await server.destroy();
  });
  const make = () => {
    // A long command timeout: the failures below must come from fail-fast, not from a timeout.
    const s = createRedisStore({ url: server.url, keyPrefix: prefix(), commandTimeoutMs: 20_000 });
    stores.push(s);
    return s;
  };
  async function untilUp(store: CacheStore): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await store.ping();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
  }

  it("redis-killed-methods-reject-fast-with-store-unavailable-then-recover-without-recreating-the-store", async () => {
    const store = make();
    await store.put("before", rec("kept?"), 60_000);
    expect(await store.sequence("test", "t", 60_000)).toBe(0);

    await server.stop(true);
    await sleep(100);
    const t0 = Date.now();
    const results = await Promise.allSettled([
      store.get("before"),
      store.put("x", rec("x"), 60_000),
      store.sequence("test", "t", 60_000),
      store.lookup("mirror", "t", 60_000),
      store.claim("c", 60_000),
      store.release("c"),
      store.wait("w", 10_000),
      store.ping(),
    ]);
    const elapsed = Date.now() - t0;
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    }
    expect(elapsed).toBeLessThan(5_000); // far below the 20 s command timeout
    expect(store.stats().entries).toBeGreaterThanOrEqual(0); // never throws

    await server.start(); // empty: the server keeps no data
    await untilUp(store);
    await store.put("after", rec("back"), 60_000);
    expect((await store.get("after"))?.body.toString()).toBe("back");
    expect(await store.sequence("test", "t", 60_000)).toBe(0);
    expect((await store.lookup("mirror", "t", 60_000)).key).toBe(callKey("t", 0));
    expect(await store.claim("c", 60_000)).toBe(true);
  });

  it("a-wait-pending-across-a-redis-restart-still-gets-a-later-put-from-another-replica", async () => {
    const waiter = make();
    const p = `mm-test:${randomUUID()}:`;
    const w = createRedisStore({ url: server.url, keyPrefix: p });
    const writer = createRedisStore({ url: server.url, keyPrefix: p });
    stores.push(w, writer);
    await untilUp(w);
    await untilUp(writer);
    void waiter;
    const waiting = w.wait("k", 20_000);
    await sleep(100);
    await server.stop(true);
    await sleep(300);
    await server.start();
    await untilUp(writer);
    await untilUp(w);
    await sleep(200);
    await writer.put("k", rec("after-restart"), 60_000);
    expect((await waiting)?.body.toString()).toBe("after-restart");
  });

  it("a-wait-pending-while-redis-is-down-resolves-undefined-at-its-timeout", async () => {
    const store = make();
    await untilUp(store);
    const waiting = store.wait("never", 800);
    await sleep(50);
    await server.stop(true);
    expect(await waiting).toBeUndefined();
    await server.start();
    await untilUp(store);
  });

  it("a-store-created-while-redis-is-down-rejects-then-works-once-redis-is-up", async () => {
    await server.stop(true);
    const store = make();
    await expect(store.get("k")).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await server.start();
    await untilUp(store);
    await store.put("k", rec("v"), 60_000);
    expect((await store.get("k"))?.body.toString()).toBe("v");
  });

  it("calls-made-right-after-creation-wait-for-the-first-connection", async () => {
    const store = make();
    await store.put("k", rec("first"), 60_000);
    expect((await store.get("k"))?.body.toString()).toBe("first");
  });
});
