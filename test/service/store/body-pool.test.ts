// The memory store's reusable body buffers: size classes, reuse, the idle bound, and the lease
// rule that a buffer is reused only once its record left the store and every reader released it.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { BodyPool, POOL_MIN_BYTES, sizeClass } from "../../../service/store/body-pool.ts";
import { createMemoryStore } from "../../../service/store/memory.ts";
import type { StoredResponse } from "../../../service/store/types.ts";

// The garbage collector, callable here (for the case of a reader that never releases).
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const big = (fill: string, size = 20 * 1024): StoredResponse => ({ status: 200, headers: [["x-fill", fill]], body: Buffer.alloc(size, fill) });

describe("BodyPool", () => {
  it("size-classes-waste-at-most-a-quarter", () => {
    for (const len of [16384, 16385, 20000, 65535, 65536, 65537, 1_000_000, 16 * 1024 * 1024 + 1]) {
      const c = sizeClass(len);
      expect(c).toBeGreaterThanOrEqual(len);
      expect(c).toBeLessThanOrEqual(Math.ceil(len * 1.25));
    }
    expect(sizeClass(65536)).toBe(65536);
  });

  it("a-given-back-buffer-is-taken-again-for-the-same-class", () => {
    const pool = new BodyPool(1 << 20);
    const a = pool.take(20_000);
    expect(a.length).toBe(20_000);
    pool.give(a);
    expect(pool.idleBytes).toBe(sizeClass(20_000));
    const b = pool.take(19_000); // same class
    expect(b.buffer).toBe(a.buffer);
    expect(pool.idleBytes).toBe(0);
    expect(pool.take(40_000).buffer).not.toBe(a.buffer);
  });

  it("idle-buffers-beyond-the-bound-are-left-to-the-gc", () => {
    const pool = new BodyPool(64 * 1024);
    const bufs = [pool.take(32 * 1024), pool.take(32 * 1024), pool.take(32 * 1024)];
    for (const b of bufs) pool.give(b);
    expect(pool.idleBytes).toBe(64 * 1024);
  });
});

describe("memory store body reuse", () => {
  it("a-record-body-is-reused-only-after-it-left-the-store-and-its-reader-released-it", async () => {
    const store = createMemoryStore({ maxBytes: 64 << 20 });
    await store.put("a", big("a"), 60_000);
    const reader = (await store.get("a"))!;
    expect(reader.body.length).toBeGreaterThanOrEqual(POOL_MIN_BYTES);
    await store.put("a", big("b"), 60_000); // the record leaves the store (replaced) …
    await store.put("c", big("c"), 60_000); // … and a new body needs a buffer: not the one being read
    expect(reader.body.equals(Buffer.alloc(20 * 1024, "a"))).toBe(true);
    const c = (await store.get("c"))!;
    expect(c.body.buffer).not.toBe(reader.body.buffer);
    reader.release!(); // the last reader is done: now it can be reused
    await store.put("d", big("d"), 60_000);
    const d = (await store.get("d"))!;
    expect(d.body.buffer).toBe(reader.body.buffer);
    expect(d.body.equals(Buffer.alloc(20 * 1024, "d"))).toBe(true);
    await store.close();
  });

  it("a-record-still-in-the-store-keeps-its-buffer-even-when-every-reader-released-it", async () => {
    const store = createMemoryStore({ maxBytes: 64 << 20 });
    await store.put("k", big("k"), 60_000);
    const r1 = (await store.get("k"))!;
    const r2 = (await store.get("k"))!;
    r1.release!();
    r2.release!();
    await store.put("other", big("o"), 60_000);
    expect((await store.get("k"))!.body.equals(Buffer.alloc(20 * 1024, "k"))).toBe(true);
    expect((await store.get("other"))!.body.buffer).not.toBe(r1.body.buffer);
    await store.close();
  });

  it("every-woken-waiter-holds-its-own-lease", async () => {
    const store = createMemoryStore({ maxBytes: 64 << 20 });
    const w1 = store.wait("k", 5_000);
    const w2 = store.wait("k", 5_000);
    await store.put("k", big("k"), 60_000);
    const [a, b] = [(await w1)!, (await w2)!];
    await store.put("k", big("x"), 60_000); // the woken record leaves the store
    a.release!();
    await store.put("n1", big("n"), 60_000); // b still reads: no reuse
    expect(b.body.equals(Buffer.alloc(20 * 1024, "k"))).toBe(true);
    b.release!();
    await store.put("n2", big("m"), 60_000); // now it may be reused
    expect((await store.get("n2"))!.body.buffer).toBe(a.body.buffer);
    await store.close();
  });

  it("a-reader-that-never-releases-leaves-the-buffer-to-the-garbage-collector", async () => {
    // An answer whose connection is cut never releases its lease (call.ts sendRecord): once its
    // record has left the store, nothing the store keeps may hold the buffer alive.
    const store = createMemoryStore({ maxBytes: 64 << 20 });
    await store.put("k", big("k"), 60_000);
    let reader: StoredResponse | undefined = (await store.get("k"))!;
    const memory = new WeakRef(reader.body.buffer);
    reader = undefined;
    await store.put("k", big("x"), 60_000); // the record leaves the store, still leased
    for (let i = 0; i < 10 && memory.deref() !== undefined; i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    expect(memory.deref()).toBeUndefined();
    expect((await store.get("k"))!.body.equals(Buffer.alloc(20 * 1024, "x"))).toBe(true);
    await store.close();
  });
});
