// The memory store's map: byte budget with least-recently-used eviction, TTL per entry, and a
// purge that only ever touches expired entries (bounded per call).
import { describe, expect, it } from "vitest";
import { ExpiringLru, LruEntry } from "../../../service/store/expiring-lru.ts";

class Item extends LruEntry {
  constructor(
    key: string,
    readonly value: string,
    size: number,
  ) {
    super(key, size);
  }
}

/** The map, with string values by key as the tests read them. */
function lru(maxSize = 1000) {
  const clock = { t: 0 };
  const m = new ExpiringLru<Item>(maxSize, () => clock.t);
  const map = {
    set: (key: string, value: string, size: number, ttl: number) => m.set(new Item(key, value, size), ttl),
    get: (key: string) => m.get(key)?.value,
    peek: (key: string) => m.peek(key)?.value,
    has: (key: string) => m.has(key),
    delete: (key: string) => m.delete(key),
    purgeExpired: (limit: number) => m.purgeExpired(limit),
    refresh: (key: string, ttl: number) => m.refresh(m.peek(key)!, ttl),
    get size() {
      return m.size;
    },
    get calculatedSize() {
      return m.calculatedSize;
    },
  };
  return { clock, map };
}

describe("ExpiringLru", () => {
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
    expect(map.size).toBe(1); // still held until purged or read with get
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
