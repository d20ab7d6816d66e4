// The memory store's maps: byte budget with least-recently-used eviction, TTL per entry, and a
// purge that only ever touches expired entries (bounded per call). One suite runs against both:
// ExpiringLru (an entry object per key: claims) and OffHeapLru (slots in typed arrays: records
// and counters); then what each adds.
import { describe, expect, it } from "vitest";
import { ExpiringLru, LruEntry } from "../../../service/store/expiring-lru.ts";
import { OffHeapLru } from "../../../service/store/offheap-lru.ts";

class Item extends LruEntry {
  constructor(
    key: string,
    readonly value: string,
    size: number,
  ) {
    super(key, size);
  }
}

/** A map with string values by key, as the shared cases read it. */
interface TestMap {
  set(key: string, value: string, size: number, ttl: number): boolean;
  get(key: string): string | undefined;
  peek(key: string): string | undefined;
  has(key: string): boolean;
  delete(key: string): boolean;
  purgeExpired(limit: number): number;
  refresh(key: string, ttl: number): void;
  readonly size: number;
  readonly calculatedSize: number;
}

interface Impl {
  /** Whether a peek at an expired entry also removes it (OffHeapLru: a lookup that finds an
   * expired key drops it, so that an insert after the miss never duplicates the key). */
  peekRemovesExpired: boolean;
  make(maxSize: number, now: () => number): TestMap;
}

const objects: Impl = {
  peekRemovesExpired: false,
  make(maxSize, now) {
    const m = new ExpiringLru<Item>(maxSize, now);
    return {
      set: (key, value, size, ttl) => m.set(new Item(key, value, size), ttl),
      get: (key) => m.get(key)?.value,
      peek: (key) => m.peek(key)?.value,
      has: (key) => m.has(key),
      delete: (key) => m.delete(key),
      purgeExpired: (limit) => m.purgeExpired(limit),
      refresh: (key, ttl) => m.refresh(m.peek(key)!, ttl),
      get size() {
        return m.size;
      },
      get calculatedSize() {
        return m.calculatedSize;
      },
    };
  },
};

const slots: Impl = {
  peekRemovesExpired: true,
  make(maxSize, now) {
    const values: string[] = [];
    const m = new OffHeapLru(maxSize, now, (s) => {
      values[s] = "(removed)";
    });
    const at = (s: number) => (s < 0 ? undefined : values[s]);
    return {
      set: (key, value, size, ttl) => {
        const s = m.set(key, size, ttl);
        if (s >= 0) values[s] = value;
        return s >= 0;
      },
      get: (key) => at(m.get(key)),
      peek: (key) => at(m.find(key)),
      has: (key) => m.has(key),
      delete: (key) => m.delete(key),
      purgeExpired: (limit) => m.purgeExpired(limit),
      refresh: (key, ttl) => m.refresh(m.find(key), ttl),
      get size() {
        return m.size;
      },
      get calculatedSize() {
        return m.calculatedSize;
      },
    };
  },
};

describe.each([
  ["ExpiringLru", objects],
  ["OffHeapLru", slots],
] as const)("%s", (_name, impl) => {
  /** The map, with a test clock. */
  function lru(maxSize = 1000) {
    const clock = { t: 0 };
    return { clock, map: impl.make(maxSize, () => clock.t) };
  }

  it("evicts-the-least-recently-used-entries-to-stay-within-the-byte-budget", () => {
    const { map } = lru(30);
    map.set("a", "A", 10, 1000);
    map.set("b", "B", 10, 1000);
    map.set("c", "C", 10, 1000);
    expect(map.get("a")).toBe("A"); // a is now the most recent: b goes first
    map.set("d", "D", 15, 1000);
    expect(map.peek("b")).toBeUndefined();
    expect(map.peek("c")).toBeUndefined(); // 10 + 10 + 15 > 30: c had to go too
    expect([map.peek("a"), map.peek("d")]).toEqual(["A", "D"]);
    expect(map.calculatedSize).toBe(25);
    expect(map.size).toBe(2);
  });

  it("peek-and-has-leave-recency-alone", () => {
    const { map } = lru(20);
    map.set("a", "A", 10, 1000);
    map.set("b", "B", 10, 1000);
    expect(map.peek("a")).toBe("A");
    expect(map.has("a")).toBe(true);
    map.set("c", "C", 10, 1000);
    expect(map.has("a")).toBe(false); // still the oldest
    expect(map.has("b")).toBe(true);
  });

  it("an-entry-over-the-budget-is-refused-and-drops-the-older-value-of-its-key", () => {
    const { map } = lru(100);
    map.set("k", "small", 10, 1000);
    map.set("other", "o", 10, 1000);
    expect(map.set("k", "huge", 101, 1000)).toBe(false);
    expect(map.peek("k")).toBeUndefined();
    expect(map.peek("other")).toBe("o"); // nothing else was evicted for it
    expect(map.calculatedSize).toBe(10);
  });

  it("overwriting-replaces-size-and-expiry", () => {
    const { map, clock } = lru();
    map.set("k", "one", 10, 100);
    clock.t = 90;
    map.set("k", "two", 30, 100);
    expect(map.calculatedSize).toBe(30);
    clock.t = 150; // the first expiry (100) has passed, the second (190) not
    expect(map.get("k")).toBe("two");
    expect(map.purgeExpired(Infinity)).toBe(0);
    clock.t = 190;
    expect(map.get("k")).toBeUndefined();
    expect(map.size).toBe(0);
    expect(map.calculatedSize).toBe(0);
  });

  it("refresh-gives-a-new-ttl-from-now-and-makes-the-entry-the-most-recent", () => {
    const { map, clock } = lru(20);
    map.set("a", "A", 10, 100);
    map.set("b", "B", 10, 100);
    clock.t = 80;
    map.refresh("a", 100); // now expires at 180, and b is the least recently used
    clock.t = 120;
    expect(map.purgeExpired(Infinity)).toBe(1); // b
    expect(map.peek("a")).toBe("A");
    map.set("c", "C", 10, 100);
    map.set("d", "D", 10, 100); // evicts a, the oldest in use order
    expect(map.peek("a")).toBeUndefined();
    clock.t = 180;
    expect(map.size).toBe(2);
    expect(map.purgeExpired(Infinity)).toBe(0); // c and d expire at 220
  });

  it("reads-never-return-an-expired-entry-even-before-a-purge", () => {
    const { map, clock } = lru();
    map.set("k", "v", 1, 50);
    clock.t = 49;
    expect(map.peek("k")).toBe("v");
    clock.t = 50;
    expect(map.peek("k")).toBeUndefined();
    expect(map.has("k")).toBe(false);
    expect(map.size).toBe(impl.peekRemovesExpired ? 0 : 1); // else still held until purged or read with get
    expect(map.get("k")).toBeUndefined();
    expect(map.size).toBe(0);
  });

  it("purge-drops-exactly-the-expired-entries-of-every-ttl-whatever-their-recency", () => {
    const { map, clock } = lru(1_000_000);
    for (let i = 0; i < 10; i++) map.set(`short${i}`, "s", 1, 100);
    for (let i = 0; i < 10; i++) map.set(`long${i}`, "l", 1, 1000);
    clock.t = 50;
    for (let i = 0; i < 10; i++) map.set(`mid${i}`, "m", 1, 100); // expire at 150
    map.get("short3"); // recency does not change when an entry expires
    clock.t = 100;
    expect(map.purgeExpired(Infinity)).toBe(10);
    expect(map.size).toBe(20);
    clock.t = 150;
    expect(map.purgeExpired(Infinity)).toBe(10);
    expect([...Array(10).keys()].every((i) => map.peek(`long${i}`) === "l")).toBe(true);
    clock.t = 1000;
    expect(map.purgeExpired(Infinity)).toBe(10);
    expect(map.size).toBe(0);
    expect(map.calculatedSize).toBe(0);
  });

  it("purge-stops-at-its-limit-and-the-next-call-goes-on", () => {
    const { map, clock } = lru(1_000_000);
    for (let i = 0; i < 25; i++) map.set(`k${i}`, "v", 2, 10);
    clock.t = 10;
    expect(map.purgeExpired(10)).toBe(10);
    expect(map.size).toBe(15);
    expect(map.purgeExpired(10)).toBe(10);
    expect(map.purgeExpired(10)).toBe(5);
    expect(map.purgeExpired(10)).toBe(0);
    expect(map.calculatedSize).toBe(0);
  });

  it("deleted-and-evicted-entries-leave-the-expiry-lists", () => {
    const { map, clock } = lru(20);
    map.set("a", "A", 10, 100);
    map.set("b", "B", 10, 100);
    expect(map.delete("a")).toBe(true);
    expect(map.delete("a")).toBe(false);
    map.set("c", "C", 10, 100);
    map.set("d", "D", 10, 100); // evicts b
    clock.t = 100;
    expect(map.purgeExpired(Infinity)).toBe(2); // c and d only: a and b are gone already
    expect(map.size).toBe(0);
  });
});

describe("ExpiringLru", () => {
  it("holds-tells-a-kept-entry-is-held-and-take-removes-and-returns-it-even-expired", () => {
    const clock = { t: 0 };
    const removed: string[] = [];
    const m = new ExpiringLru<Item>(100, () => clock.t, (e) => removed.push(e.key));
    const a = new Item("a", "A", 10);
    const b = new Item("b", "B", 10);
    m.set(a, 1000);
    m.set(b, 500);
    expect(m.holds(a)).toBe(true);
    m.set(new Item("a", "A2", 10), 1000); // replaced: the old object is no longer held
    expect(m.holds(a)).toBe(false);
    clock.t = 500;
    expect(m.holds(b)).toBe(false); // expired, not purged yet
    expect(m.take("b")).toBe(b); // taken all the same, with the removal hook
    expect(m.take("b")).toBeUndefined();
    expect(m.size).toBe(1);
    expect(m.calculatedSize).toBe(10);
    expect(removed).toEqual(["a", "b"]);
  });
});

describe("OffHeapLru", () => {
  it("grows-past-its-first-slots-and-keeps-every-key-through-deletes-and-reinserts", () => {
    const removed: number[] = [];
    let capacity = 0;
    const m = new OffHeapLru(1e12, () => 0, (s) => removed.push(s), (c) => (capacity = c));
    const key = (i: number) => `${i}\n${"p".repeat(i % 37)}${i % 5 === 0 ? "ü€" : ""}`; // Latin-1 and UTF-16 keys
    const slot = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) slot.set(key(i), m.insert(key(i), 1, 60_000));
    expect(capacity).toBeGreaterThanOrEqual(20_000);
    expect(new Set(slot.values()).size).toBe(20_000);
    for (let i = 0; i < 20_000; i++) expect(m.find(key(i))).toBe(slot.get(key(i)));
    for (let i = 0; i < 20_000; i += 2) expect(m.delete(key(i))).toBe(true);
    expect(removed.length).toBe(10_000);
    for (let i = 0; i < 20_000; i++) expect(m.find(key(i)) >= 0).toBe(i % 2 === 1);
    // deleted slots are recycled before the table grows again
    for (let i = 0; i < 10_000; i++) m.insert(`again-${i}`, 1, 60_000);
    expect(removed.every((s) => s < capacity)).toBe(true);
    for (let i = 0; i < 10_000; i++) expect(m.find(`again-${i}`)).toBeGreaterThanOrEqual(0);
    for (let i = 1; i < 20_000; i += 2) expect(m.find(key(i))).toBe(slot.get(key(i)));
    expect(m.size).toBe(20_000);
    expect(m.calculatedSize).toBe(20_000);
  });

  it("keys-match-only-equal-strings", () => {
    const m = new OffHeapLru(1e6, () => 0);
    const keys = ["", "a", "ab", "a\0", "\0a", "xA", "x\u0141", "x\u00c1", "\ud800", "\udc00", "\ud83d\ude00", "\u00ff\u00ff", "\uffff"];
    const slots = keys.map((k) => m.insert(k, 1, 1000));
    keys.forEach((k, i) => expect(m.find(k), JSON.stringify(k)).toBe(slots[i]));
    expect(m.find("x\u0041\u0000")).toBe(-1);
    expect(m.find("\ud83d")).toBe(-1);
    expect(m.find("A")).toBe(-1);
  });

  it("a-recycled-slot-changes-its-generation-so-a-kept-slot-and-generation-stop-matching", () => {
    const clock = { t: 0 };
    const seen: Array<[number, number]> = [];
    const m = new OffHeapLru(100, () => clock.t, (s) => seen.push([s, m.gen(s)]));
    const a = m.insert("a", 10, 1000);
    const g = m.gen(a);
    expect(m.holds(a, g)).toBe(true);
    expect(m.touch(a, g)).toBe(true);
    expect(m.delete("a")).toBe(true);
    expect(seen).toEqual([[a, g]]); // the hook saw the slot before it was recycled
    expect(m.holds(a, g)).toBe(false);
    const b = m.insert("b", 10, 1000);
    expect(b).toBe(a); // the free slot, reused…
    expect(m.gen(b)).not.toBe(g); // …under a new generation
    expect(m.touch(a, g)).toBe(false);
    // expired: not held; touch removes it
    clock.t = 1000;
    expect(m.holds(b, m.gen(b))).toBe(false);
    expect(m.touch(b, m.gen(b))).toBe(false);
    expect(m.size).toBe(0);
    // clear: nothing held, no removal hook
    const c = m.insert("c", 10, 1000);
    const gc = m.gen(c);
    m.clear();
    expect(m.holds(c, gc)).toBe(false);
    expect(m.find("c")).toBe(-1);
    expect(seen.length).toBe(2);
    expect(m.insert("c", 10, 1000)).toBeGreaterThanOrEqual(0);
    expect(m.calculatedSize).toBe(10);
  });
});
