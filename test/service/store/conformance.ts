// One conformance suite for every CacheStore (undici-style): memory-store.test.ts and
// redis-store.test.ts call describeCacheStore with a factory; each case gets a fresh store (for
// Redis: a fresh key prefix on the shared test redis-server).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { callKey } from "../../../service/key.ts";
import { StoreUnavailableError, type CacheStore, type StoredResponse } from "../../../service/store/types.ts";

export type MakeStore = () => CacheStore | Promise<CacheStore>;

const TTL = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every byte value, twice, so an encoding that is not binary-safe shows. */
function binaryBody(): Buffer {
  const b = Buffer.alloc(512);
  for (let i = 0; i < b.length; i++) b[i] = i & 0xff;
  return b;
}

function record(body: Buffer | string = "hello", status = 200): StoredResponse {
  return {
    status,
    headers: [
      ["content-type", "application/octet-stream"],
      ["set-cookie", "a=1; Path=/"],
      ["set-cookie", "b=2; Path=/"],
      ["x-unicode", "café ☕"],
      ["x-empty", ""],
    ],
    body: typeof body === "string" ? Buffer.from(body) : body,
  };
}

function expectSame(got: StoredResponse | undefined, want: StoredResponse): void {
  expect(got).toBeDefined();
  expect(got!.status).toBe(want.status);
  expect(got!.headers).toEqual(want.headers);
  expect(Buffer.compare(got!.body, want.body)).toBe(0);
  expect(got!.body.length).toBe(want.body.length);
}

export function describeCacheStore(name: string, makeStore: MakeStore): void {
  describe(`CacheStore conformance: ${name}`, () => {
    let store: CacheStore;
    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    describe("records", () => {
      it("put-then-get-roundtrips-byte-identical-binary-body-and-repeated-headers", async () => {
        const r = record(binaryBody(), 201);
        await store.put("k1", r, TTL);
        expectSame(await store.get("k1"), r);
      });

      it("put-then-get-roundtrips-empty-body-and-no-headers", async () => {
        const r: StoredResponse = { status: 204, headers: [], body: Buffer.alloc(0) };
        await store.put("empty", r, TTL);
        expectSame(await store.get("empty"), r);
      });

      it("roundtrips-a-large-body-and-error-statuses", async () => {
        const big = Buffer.alloc(256 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
        const r = record(big, 502);
        await store.put("big", r, TTL);
        expectSame(await store.get("big"), r);
      });

      it("keys-are-exact-strings-with-separators-and-unicode", async () => {
        const a = "rid-1\0GET\0api.example.com\0/a?x=1\u00000";
        const b = "rid-1\0GET\0api.example.com\0/a?x=1\u00001";
        const u = "rid-ü\0GET\0host\0/päth\u00000";
        await store.put(a, record("A"), TTL);
        await store.put(u, record("U"), TTL);
        expect((await store.get(a))?.body.toString()).toBe("A");
        expect(await store.get(b)).toBeUndefined();
        expect((await store.get(u))?.body.toString()).toBe("U");
      });

      it("get-of-a-missing-key-is-undefined", async () => {
        expect(await store.get("nope")).toBeUndefined();
      });

      it("put-overwrites-a-record", async () => {
        await store.put("k", record("one"), TTL);
        await store.put("k", record("two"), TTL);
        expect((await store.get("k"))?.body.toString()).toBe("two");
      });

      it("record-expires-after-its-ttl", async () => {
        await store.put("short", record("x"), 60);
        await store.put("long", record("y"), TTL);
        expect(await store.get("short")).toBeDefined();
        await sleep(200);
        expect(await store.get("short")).toBeUndefined();
        expect(await store.get("long")).toBeDefined();
      });

      it("stats-count-a-stored-record", async () => {
        const before = store.stats();
        await store.put("s", record("stats"), TTL);
        const after = store.stats();
        expect(after.entries).toBe(before.entries + 1);
        expect(after.bytes).toBeGreaterThan(before.bytes);
      });
    });

    describe("wait", () => {
      it("wait-resolves-immediately-on-an-existing-record", async () => {
        const r = record("there");
        await store.put("w0", r, TTL);
        expectSame(await store.wait("w0", 5_000), r);
      });

      it("wait-resolves-on-a-later-put", async () => {
        const r = record(binaryBody());
        const waiting = store.wait("w1", 5_000);
        await sleep(30);
        await store.put("w1", r, TTL);
        expectSame(await waiting, r);
      });

      it("put-wakes-every-waiter-of-the-key-and-only-them", async () => {
        const ws = [store.wait("w2", 5_000), store.wait("w2", 5_000), store.wait("w2", 5_000)];
        const other = store.wait("w2-other", 200);
        await sleep(20);
        await store.put("w2", record("all"), TTL);
        for (const v of await Promise.all(ws)) expect(v?.body.toString()).toBe("all");
        expect(await other).toBeUndefined();
      });

      it("wait-times-out-to-undefined", async () => {
        const t0 = Date.now();
        expect(await store.wait("never", 80)).toBeUndefined();
        expect(Date.now() - t0).toBeGreaterThanOrEqual(70);
      });

      it("wait-with-an-infinite-timeout-waits-for-the-put", async () => {
        const waiting = store.wait("forever", Number.POSITIVE_INFINITY);
        await sleep(30);
        await store.put("forever", record("at last"), TTL);
        expect((await waiting)?.body.toString()).toBe("at last");
      });

      it("wait-with-zero-timeout-and-no-record-is-undefined", async () => {
        expect(await store.wait("never0", 0)).toBeUndefined();
      });

      it("abort-signal-resolves-a-wait-to-undefined", async () => {
        const ac = new AbortController();
        const waiting = store.wait("aborted", 10_000, ac.signal);
        await sleep(20);
        ac.abort();
        expect(await waiting).toBeUndefined();
        // the aborted waiter is gone: a later put doesn't throw and a new wait still works
        await store.put("aborted", record("late"), TTL);
        expect((await store.wait("aborted", 1000))?.body.toString()).toBe("late");
      });

      it("an-already-aborted-signal-resolves-undefined-without-waiting", async () => {
        const t0 = Date.now();
        expect(await store.wait("aborted2", 10_000, AbortSignal.abort())).toBeUndefined();
        expect(Date.now() - t0).toBeLessThan(5_000);
      });

      it("close-resolves-pending-waits-to-undefined", async () => {
        const waiting = store.wait("pending", 30_000);
        await sleep(30);
        await store.close();
        expect(await waiting).toBeUndefined();
      });

      it("after-close-methods-reject-with-store-unavailable-and-wait-is-undefined", async () => {
        await store.close();
        await expect(store.get("x")).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.put("x", record(), TTL)).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.sequence("test", "t", TTL)).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.claim("x", TTL)).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(await store.wait("x", 1000)).toBeUndefined();
      });
    });

    describe("sequence", () => {
      it("sequence-counts-per-stack-and-per-tuple-independently", async () => {
        expect(await store.sequence("test", "GET a /x", TTL)).toBe(0);
        expect(await store.sequence("test", "GET a /x", TTL)).toBe(1);
        expect(await store.sequence("mirror", "GET a /x", TTL)).toBe(0);
        expect(await store.sequence("test", "GET a /y", TTL)).toBe(0);
        expect(await store.sequence("test", "GET a /x", TTL)).toBe(2);
        expect(await store.sequence("mirror", "GET a /x", TTL)).toBe(1);
      });

      it("sequence-is-atomic-under-100-concurrent-calls", async () => {
        const ns = await Promise.all(Array.from({ length: 100 }, () => store.sequence("test", "rid GET h /p", TTL)));
        expect([...ns].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      });

      it("sequence-counter-expires-after-its-ttl", async () => {
        expect(await store.sequence("test", "ttl", 60)).toBe(0);
        expect(await store.sequence("test", "ttl", 60)).toBe(1);
        await sleep(200);
        expect(await store.sequence("test", "ttl", 60)).toBe(0);
      });
    });

    describe("lookup", () => {
      it("lookup-counts-like-sequence-per-stack-and-per-tuple-independently", async () => {
        const t = "rid\nGET\nh\n/x";
        expect((await store.lookup("mirror", t, TTL)).key).toBe(callKey(t, 0));
        expect((await store.lookup("mirror", t, TTL)).key).toBe(callKey(t, 1));
        expect((await store.lookup("test", t, TTL)).key).toBe(callKey(t, 0));
        expect((await store.lookup("mirror", t + "y", TTL)).key).toBe(callKey(t + "y", 0));
        expect((await store.lookup("mirror", t, TTL)).key).toBe(callKey(t, 2));
        expect((await store.lookup("test", t, TTL)).key).toBe(callKey(t, 1));
      });

      it("lookup-finds-the-record-put-under-callkey-of-its-n-byte-identical", async () => {
        const t = "rid-ü\nPOST\napi.example.com\n/päth?x=1";
        const r0 = record(binaryBody(), 201);
        const r1 = record("second", 502);
        await store.put(callKey(t, 0), r0, TTL);
        await store.put(callKey(t, 1), r1, TTL);
        const a = await store.lookup("mirror", t, TTL);
        expect(a.key).toBe(callKey(t, 0));
        expectSame(a.record, r0);
        const b = await store.lookup("mirror", t, TTL);
        expect(b.key).toBe(callKey(t, 1));
        expectSame(b.record, r1);
      });

      it("lookup-of-an-unrecorded-call-counts-and-returns-an-undefined-record", async () => {
        const t = "rid\nGET\nh\n/absent";
        await store.put(callKey(t, 1), record("only n=1"), TTL);
        await store.put(callKey(t + "/other", 0), record("other tuple"), TTL);
        expect(await store.lookup("mirror", t, TTL)).toEqual({ key: callKey(t, 0), record: undefined });
        expect((await store.lookup("mirror", t, TTL)).record?.body.toString()).toBe("only n=1");
        expect(await store.lookup("mirror", t, TTL)).toEqual({ key: callKey(t, 2), record: undefined });
      });

      it("lookup-and-sequence-of-the-same-stack-share-one-counter", async () => {
        const t = "rid\nGET\nh\n/shared";
        await store.put(callKey(t, 1), record("one"), TTL);
        expect(await store.sequence("mirror", t, TTL)).toBe(0);
        const a = await store.lookup("mirror", t, TTL);
        expect(a.key).toBe(callKey(t, 1));
        expect(a.record?.body.toString()).toBe("one");
        expect(await store.sequence("mirror", t, TTL)).toBe(2);
        expect((await store.lookup("mirror", t, TTL)).key).toBe(callKey(t, 3));
        expect(await store.sequence("test", t, TTL)).toBe(0);
      });

      it("lookup-is-atomic-under-100-concurrent-calls-mixed-with-sequence", async () => {
        const t = "rid\nGET\nh\n/p";
        const ns = await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            i % 2 ? store.sequence("mirror", t, TTL) : store.lookup("mirror", t, TTL).then((l) => Number(l.key.slice(l.key.lastIndexOf("\n") + 1))),
          ),
        );
        expect([...ns].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      });

      it("lookup-counter-expires-after-its-ttl", async () => {
        const t = "rid\nGET\nh\n/ttl";
        expect((await store.lookup("mirror", t, 60)).key).toBe(callKey(t, 0));
        expect((await store.lookup("mirror", t, 60)).key).toBe(callKey(t, 1));
        await sleep(200);
        expect((await store.lookup("mirror", t, 60)).key).toBe(callKey(t, 0));
      });

      it("lookup-after-close-rejects-with-store-unavailable", async () => {
        await store.close();
        await expect(store.lookup("mirror", "t", TTL)).rejects.toBeInstanceOf(StoreUnavailableError);
      });

      // Optional method: skipped (not passed) for a store without it.
      it("lookupnow-shares-the-counter-and-records-of-lookup", async (ctx) => {
        if (store.lookupNow === undefined) return ctx.skip();
        const t = "rid\nGET\nh\n/now";
        await store.put(callKey(t, 1), record("n=1"), TTL);
        expect(store.lookupNow("mirror", t, TTL)).toEqual({ key: callKey(t, 0), record: undefined });
        const a = store.lookupNow("mirror", t, TTL);
        expect(a.key).toBe(callKey(t, 1));
        expect(a.record?.body.toString()).toBe("n=1");
        a.record?.release?.();
        expect((await store.lookup("mirror", t, TTL)).key).toBe(callKey(t, 2));
        expect(store.lookupNow("mirror", t, TTL).key).toBe(callKey(t, 3));
        expect(await store.sequence("test", t, TTL)).toBe(0);
      });

      it("lookupnow-after-close-throws-store-unavailable", async (ctx) => {
        if (store.lookupNow === undefined) return ctx.skip();
        await store.close();
        expect(() => store.lookupNow!("mirror", "t", TTL)).toThrow(StoreUnavailableError);
      });
    });

    describe("begin", () => {
      it("begin-counts-the-test-stack-like-sequence-and-claims-the-nth-key", async () => {
        const t = "rid\nGET\nh\n/begin";
        expect(await store.begin(t, TTL, TTL)).toEqual({ key: callKey(t, 0), won: true });
        expect(await store.sequence("test", t, TTL)).toBe(1);
        expect(await store.begin(t, TTL, TTL)).toEqual({ key: callKey(t, 2), won: true });
        expect(await store.sequence("mirror", t, TTL)).toBe(0); // the mirror stack counts apart
        expect(await store.begin(t + "y", TTL, TTL)).toEqual({ key: callKey(t + "y", 0), won: true });
      });

      it("begin-loses-to-a-held-claim-and-wins-once-it-is-released", async () => {
        const t = "rid\nGET\nh\n/held";
        expect(await store.claim(callKey(t, 0), TTL)).toBe(true); // another caller holds n = 0
        expect(await store.begin(t, TTL, TTL)).toEqual({ key: callKey(t, 0), won: false });
        const b = await store.begin(t, TTL, TTL);
        expect(b).toEqual({ key: callKey(t, 1), won: true });
        expect(await store.claim(b.key, TTL)).toBe(false); // begin's claim is a claim
        await store.release(b.key);
        expect(await store.claim(b.key, TTL)).toBe(true);
      });

      it("begin-is-atomic-under-100-concurrent-calls-mixed-with-sequence", async () => {
        const t = "rid\nGET\nh\n/many";
        const out = await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            i % 2
              ? store.sequence("test", t, TTL).then((n) => ({ n, won: true }))
              : store.begin(t, TTL, TTL).then((b) => ({ n: Number(b.key.slice(b.key.lastIndexOf("\n") + 1)), won: b.won })),
          ),
        );
        expect(out.map((o) => o.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
        expect(out.every((o) => o.won)).toBe(true); // every key distinct: every claim wins
      });

      it("a-recorded-call-is-found-by-lookup-and-the-claim-is-dropped-by-put", async () => {
        const t = "rid\nGET\nh\n/rec";
        const b = await store.begin(t, TTL, TTL);
        const r = record(binaryBody(), 200);
        await store.put(b.key, r, TTL);
        const l = await store.lookup("mirror", t, TTL);
        expect(l.key).toBe(b.key);
        expectSame(l.record, r);
        await store.release(b.key); // harmless after put
        expectSame(await store.get(b.key), r);
      });

      it("begin-counter-and-claim-expire-after-their-ttls", async () => {
        const t = "rid\nGET\nh\n/ttl-begin";
        expect((await store.begin(t, 60, 60)).won).toBe(true);
        expect(await store.begin(t, 60, 60)).toEqual({ key: callKey(t, 1), won: true });
        await sleep(200);
        expect(await store.begin(t, TTL, TTL)).toEqual({ key: callKey(t, 0), won: true });
      });

      it("begin-with-an-invalid-ttl-rejects-and-does-not-count", async () => {
        const t = "rid\nGET\nh\n/bad-ttl";
        await expect(store.begin(t, TTL, 0)).rejects.toBeInstanceOf(TypeError);
        await expect(store.begin(t, Number.NaN, TTL)).rejects.toBeInstanceOf(TypeError);
        expect(await store.begin(t, TTL, TTL)).toEqual({ key: callKey(t, 0), won: true });
      });

      it("begin-after-close-rejects-with-store-unavailable", async () => {
        await store.close();
        await expect(store.begin("t", TTL, TTL)).rejects.toBeInstanceOf(StoreUnavailableError);
      });
    });

    describe("claim", () => {
      it("only-one-of-n-concurrent-claims-wins", async () => {
        const wins = await Promise.all(Array.from({ length: 20 }, () => store.claim("c1", TTL)));
        expect(wins.filter(Boolean)).toHaveLength(1);
      });

      it("release-lets-a-new-claim-win", async () => {
        expect(await store.claim("c2", TTL)).toBe(true);
        expect(await store.claim("c2", TTL)).toBe(false);
        await store.release("c2");
        expect(await store.claim("c2", TTL)).toBe(true);
      });

      it("release-of-an-unclaimed-key-is-harmless", async () => {
        await store.release("never-claimed");
        expect(await store.claim("never-claimed", TTL)).toBe(true);
      });

      it("claim-expires-after-its-ttl", async () => {
        expect(await store.claim("c3", 60)).toBe(true);
        await sleep(200);
        expect(await store.claim("c3", TTL)).toBe(true);
      });

      it("claims-on-different-keys-are-independent", async () => {
        expect(await store.claim("c4", TTL)).toBe(true);
        expect(await store.claim("c5", TTL)).toBe(true);
      });
    });

    it("ping-resolves-when-the-backend-is-up", async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it("reports-its-kind", () => {
      expect(["memory", "redis"]).toContain(store.kind);
    });
  });
}
