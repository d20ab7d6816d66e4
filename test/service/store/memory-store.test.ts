// The memory store: the shared conformance suite, then what only an in-process LRU promises
// (byte budget, exact stats, bounded counters and claims).
import { describe, expect, it, vi } from "vitest";
import { POOL_MIN_BYTES } from "../../../service/store/body-pool.ts";
import { createMemoryStore, memoryStoreDebug, PURGE_BATCH, recordSize, SLAB_BYTES } from "../../../service/store/memory.ts";
import type { StoredResponse } from "../../../service/store/types.ts";
import { callKey, callTuple } from "../../../service/key.ts";
import { describeCacheStore } from "./conformance.ts";

describeCacheStore("memory", () => createMemoryStore({ maxBytes: 64 * 1024 * 1024 }));

const rec = (size: number, tag = "x"): StoredResponse => ({
  status: 200,
  headers: [["x-tag", tag]],
  body: Buffer.alloc(size, tag),
});

describe("memory store", () => {
  it("byte-budget-evicts-the-least-recently-used-record", async () => {
    const one = recordSize("a", rec(1000, "a"));
    const store = createMemoryStore({ maxBytes: one * 3 });
    await store.put("a", rec(1000, "a"), 60_000);
    await store.put("b", rec(1000, "b"), 60_000);
    await store.put("c", rec(1000, "c"), 60_000);
    await store.get("a"); // a is now more recent than b
    await store.put("d", rec(1000, "d"), 60_000);
    expect(await store.get("b")).toBeUndefined();
    expect(await store.get("a")).toBeDefined();
    expect(await store.get("c")).toBeDefined();
    expect(await store.get("d")).toBeDefined();
    expect(store.stats()).toEqual({ entries: 3, bytes: one * 3 });
    await store.close();
  });

  it("stats-are-exact-bytes-and-entries-after-puts-overwrites-and-expiry", async () => {
    let t = 1_000;
    const store = createMemoryStore({ maxBytes: 1 << 20, now: () => t });
    expect(store.stats()).toEqual({ entries: 0, bytes: 0 });
    const r1 = rec(100, "1");
    const r2 = rec(2000, "2");
    await store.put("k1", r1, 1_000);
    await store.put("k2", r2, 5_000);
    expect(store.stats()).toEqual({ entries: 2, bytes: recordSize("k1", r1) + recordSize("k2", r2) });
    const r1b = rec(300, "3");
    await store.put("k1", r1b, 1_000);
    expect(store.stats()).toEqual({ entries: 2, bytes: recordSize("k1", r1b) + recordSize("k2", r2) });
    t += 1_001; // k1 expired, not read since: stats still exact
    expect(store.stats()).toEqual({ entries: 1, bytes: recordSize("k2", r2) });
    expect(await store.get("k1")).toBeUndefined();
    t += 5_000;
    expect(store.stats()).toEqual({ entries: 0, bytes: 0 });
    await store.close();
  });

  it("record-size-counts-body-headers-key-and-a-fixed-overhead", () => {
    const a = recordSize("key", { status: 200, headers: [], body: Buffer.alloc(0) });
    const b = recordSize("key", { status: 200, headers: [["ab", "cd"]], body: Buffer.alloc(10) });
    expect(b - a).toBeGreaterThan(14);
    expect(a).toBeGreaterThan(3);
  });

  it("a-record-larger-than-the-budget-is-not-kept-but-still-wakes-its-waiters", async () => {
    const store = createMemoryStore({ maxBytes: 4096 });
    const waiting = store.wait("huge", 5_000);
    await store.put("huge", rec(10_000), 60_000);
    expect((await waiting)?.body.length).toBe(10_000);
    expect(await store.get("huge")).toBeUndefined();
    expect(store.stats()).toEqual({ entries: 0, bytes: 0 });
    await store.close();
  });

  it("ttl-follows-the-injected-clock", async () => {
    let t = 0;
    const store = createMemoryStore({ maxBytes: 1 << 20, now: () => t });
    await store.put("k", rec(10), 1_000);
    expect(await store.sequence("test", "tup", 1_000)).toBe(0);
    expect(await store.claim("c", 1_000)).toBe(true);
    t = 999;
    expect(await store.get("k")).toBeDefined();
    expect(await store.claim("c", 1_000)).toBe(false);
    t = 2_500; // counter was refreshed at t=0 only
    expect(await store.get("k")).toBeUndefined();
    expect(await store.sequence("test", "tup", 1_000)).toBe(0);
    expect(await store.claim("c", 1_000)).toBe(true);
    await store.close();
  });

  it("counters-and-claims-stay-within-their-byte-budget-under-unique-tuples", async () => {
    const maxMetaBytes = 256 * 1024;
    const store = createMemoryStore({ maxBytes: 1 << 20, maxMetaBytes });
    for (let i = 0; i < 50_000; i++) {
      await store.sequence("test", `attacker-${i}\0GET\0evil.example\0/${"x".repeat(i % 200)}`, 60_000);
      await store.claim(`claim-${i}`, 60_000);
    }
    const d = memoryStoreDebug(store);
    expect(d.metaBytes).toBeLessThanOrEqual(maxMetaBytes);
    expect(d.metaEntries).toBeLessThan(50_000);
    // the most recent counters survive and keep counting
    expect(await store.sequence("test", `attacker-49999\0GET\0evil.example\0/${"x".repeat(49999 % 200)}`, 60_000)).toBe(1);
    await store.close();
  });

  it("timed-out-and-aborted-waits-leave-no-waiter-behind", async () => {
    const store = createMemoryStore({ maxBytes: 1 << 20 });
    const ac = new AbortController();
    const a = store.wait("k", 20);
    const b = store.wait("k", 10_000, ac.signal);
    const c = store.wait("k2", 10_000, ac.signal);
    expect(memoryStoreDebug(store).waiters).toBe(2);
    await a;
    ac.abort();
    await Promise.all([b, c]);
    expect(memoryStoreDebug(store).waiters).toBe(0);
    await store.close();
  });

  it("small-bodies-are-copied-into-shared-slabs-never-kept-as-views-of-the-callers-buffer", async () => {
    const store = createMemoryStore({ maxBytes: 1 << 20 });
    const big = Buffer.alloc(1 << 20, 7);
    await store.put("view", { status: 200, headers: [], body: big.subarray(10, 110) }, 60_000);
    await store.put("next", { status: 200, headers: [], body: Buffer.from("second") }, 60_000);
    big.fill(9); // the caller reuses its buffer: the record keeps its own bytes
    const a = await store.get("view");
    const b = await store.get("next");
    expect(a?.body.equals(Buffer.alloc(100, 7))).toBe(true);
    expect(a?.body.buffer).not.toBe(big.buffer);
    expect(b?.body.toString()).toBe("second");
    expect(b?.body.buffer).toBe(a?.body.buffer); // one slab for records written one after another
    expect(a?.body.buffer.byteLength).toBe(SLAB_BYTES);
    // a slab that is full is followed by a new one
    const n = Math.ceil(SLAB_BYTES / 1000);
    for (let i = 0; i < n; i++) await store.put(`f${i}`, { status: 200, headers: [], body: Buffer.alloc(1000, i & 0xff) }, 60_000);
    const last = await store.get(`f${n - 1}`);
    expect(last?.body.buffer).not.toBe(a?.body.buffer);
    expect(last?.body.equals(Buffer.alloc(1000, (n - 1) & 0xff))).toBe(true);
    // each record reads its own bytes back, in either slab (a record keeps its slab and its offset)
    for (let i = 0; i < n; i++) expect((await store.get(`f${i}`))?.body.equals(Buffer.alloc(1000, i & 0xff)), `f${i}`).toBe(true);
    await store.close();
  });

  it("expired-records-counters-and-claims-are-purged-in-the-background", async () => {
    let t = 0;
    const store = createMemoryStore({ maxBytes: 1 << 20, now: () => t, purgeIntervalMs: 20 });
    await store.put("k", rec(100), 1_000);
    await store.sequence("test", "tuple", 1_000);
    await store.claim("c", 1_000);
    expect(memoryStoreDebug(store).metaEntries).toBe(2);
    t = 5_000;
    await new Promise((r) => setTimeout(r, 80));
    expect(memoryStoreDebug(store).metaEntries).toBe(0);
    expect(store.stats()).toEqual({ entries: 0, bytes: 0 });
    await store.close();
  });

  it("the-background-purge-works-through-a-backlog-in-batches-until-none-is-left", async () => {
    // Fake timers (setInterval and setImmediate) step the sweep one scheduled callback at a time:
    // polling the real event loop could not tell one batch from all of them.
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "setImmediate", "clearImmediate"] });
    try {
      let t = 0;
      const store = createMemoryStore({ maxBytes: 1 << 30, now: () => t, purgeIntervalMs: 1_000 });
      const total = PURGE_BATCH * 2 + 123;
      for (let i = 0; i < total; i++) await store.put(`k${i}`, rec(1), 1_000);
      await store.put("alive", rec(1), 60_000);
      t = 1_000;
      // No stats() here: it would purge by itself; the debug view does not.
      // The interval's tick runs one batch…
      vi.advanceTimersToNextTimer();
      expect(memoryStoreDebug(store).records).toBe(total + 1 - PURGE_BATCH);
      // …and queues the next one right after I/O (setImmediate), not on the next tick (1 s).
      vi.advanceTimersToNextTimer();
      expect(memoryStoreDebug(store).records).toBe(total + 1 - 2 * PURGE_BATCH);
      vi.advanceTimersToNextTimer();
      expect(memoryStoreDebug(store).records).toBe(1);
      expect(vi.getTimerCount()).toBe(1); // done: only the interval is left
      expect(await store.get("alive")).toBeDefined();
      await store.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("a-mirror-hit-through-the-counter-link-follows-eviction-replacement-expiry-and-a-lost-counter", async () => {
    let t = 0;
    const tuple = (id: string) => callTuple(id, "GET", "api.example:80", "/x");
    const first = async (store: ReturnType<typeof createMemoryStore>, id: string, r: StoredResponse, ttl = 60_000) => {
      expect(await store.begin(tuple(id), ttl, ttl)).toEqual({ key: callKey(tuple(id), 0), won: true });
      await store.put(callKey(tuple(id), 0), r, ttl);
    };
    const one = recordSize(callKey(tuple("a"), 0), rec(1000, "a"));
    const store = createMemoryStore({ maxBytes: one * 2, now: () => t, purgeIntervalMs: 0 });
    // linked: the hit is the record, n = 0
    await first(store, "a", rec(1000, "a"));
    const hit = await store.lookup("mirror", tuple("a"), 60_000);
    expect(hit.key).toBe(callKey(tuple("a"), 0));
    expect(hit.record?.body.equals(rec(1000, "a").body)).toBe(true);
    // evicted by the budget: the link does not resurrect it
    await first(store, "b", rec(1000, "b"));
    await first(store, "c", rec(1000, "c")); // evicts a's record… (b and c fill the budget)
    await first(store, "d", rec(1000, "d")); // …and b's
    expect((await store.lookup("mirror", tuple("b"), 60_000)).record).toBeUndefined();
    // replaced under the same key: the newer record answers
    await store.put(callKey(tuple("c"), 0), rec(1000, "C"), 60_000);
    expect((await store.lookup("mirror", tuple("c"), 60_000)).record?.body.equals(rec(1000, "C").body)).toBe(true);
    // expired: no answer, even through the link
    await first(store, "e", rec(10, "e"), 1_000);
    t = 1_000;
    expect((await store.lookup("mirror", tuple("e"), 60_000)).record).toBeUndefined();
    await store.close();

    // the counter lost (meta budget) while the record is held: found by its key instead
    const small = createMemoryStore({ maxBytes: 1 << 20, maxMetaBytes: 1_000, purgeIntervalMs: 0 });
    await first(small, "f", rec(10, "f"));
    for (let i = 0; i < 50; i++) await small.sequence("test", tuple(`filler-${i}`), 60_000);
    const found = await small.lookup("mirror", tuple("f"), 60_000);
    expect(found.key).toBe(callKey(tuple("f"), 0));
    expect(found.record?.body.equals(rec(10, "f").body)).toBe(true);
    // and the n-th record (n > 0) through its key
    await first(small, "g", rec(10, "g0"));
    expect(await small.sequence("test", tuple("g"), 60_000)).toBe(1);
    await small.put(callKey(tuple("g"), 1), rec(10, "g1"), 60_000);
    expect((await small.lookup("mirror", tuple("g"), 60_000)).record?.body.equals(rec(10, "g0").body)).toBe(true);
    expect((await small.lookup("mirror", tuple("g"), 60_000)).record?.body.equals(rec(10, "g1").body)).toBe(true);
    await small.close();
  });

  it("a-recorded-key-cannot-be-claimed-again-and-put-drops-its-claim", async () => {
    const store = createMemoryStore({ maxBytes: 1 << 20 });
    expect(await store.claim("k", 60_000)).toBe(true);
    await store.put("k", rec(10), 60_000);
    expect(memoryStoreDebug(store).metaEntries).toBe(0);
    expect(await store.claim("k", 60_000)).toBe(false);
    await store.close();
  });

  it("a-body-buffer-it-handed-out-is-adopted-by-put-once-without-a-copy", async () => {
    const store = createMemoryStore({ maxBytes: 1 << 24 });
    const len = POOL_MIN_BYTES + 100;
    const b = store.bodyBuffer!(len);
    expect(b.length).toBe(len);
    b.fill(7);
    await store.put("adopted", { status: 200, headers: [], body: b }, 60_000);
    const got = await store.get("adopted");
    expect(got?.body.buffer).toBe(b.buffer); // the same memory: adopted, not copied
    expect(got?.body.equals(Buffer.alloc(len, 7))).toBe(true);
    got?.release?.();
    // the same buffer put again is copied (adopted at most once), as is any other buffer
    await store.put("again", { status: 200, headers: [], body: b }, 60_000);
    expect((await store.get("again"))?.body.buffer).not.toBe(b.buffer);
    const mine = Buffer.alloc(len, 9);
    await store.put("mine", { status: 200, headers: [], body: mine }, 60_000);
    expect((await store.get("mine"))?.body.buffer).not.toBe(mine.buffer);
    // a small body buffer is a plain one
    expect(store.bodyBuffer!(100).length).toBe(100);
    await store.close();
  });

  it("rejects-a-nonsense-budget", () => {
    expect(() => createMemoryStore({ maxBytes: 0 })).toThrow(/maxBytes/);
    expect(() => createMemoryStore({ maxBytes: Number.NaN })).toThrow(/maxBytes/);
  });
});
