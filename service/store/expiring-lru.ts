// A string-keyed map with a byte budget (the least recently used entries leave first) and a TTL
// per entry, where dropping expired entries costs O(expired entries), never O(all entries).
//
// Why not lru-cache (used before): its `purgeStale()` walks every entry, which at 700k records
// blocked the event loop for ~400 ms every time it ran (the whole mirror hit path's p99). Here:
//   - recency: entries are linked in use order (a read moves its entry to the end); the budget
//     evicts from the front. The links live in the entry, so a read touches no Map (re-inserting
//     into a Map of 700k entries on every read makes V8 rehash it, tens of ms, every ~N reads);
//   - expiry: entries with the same TTL are linked in one list in the order they were set, which
//     is also the order they expire in (expiry = set time + TTL, set times only grow). Purging is
//     "pop list heads while they are due", for each distinct TTL (a service uses one or two).
// Reads never return an expired entry, purged or not.

/** What the map holds: a subclass adds the payload (a record, a counter). The entry is the
 * payload's own object, so the bookkeeping costs no second object per entry. */
export class LruEntry {
  /** Neighbours in use order (older, newer). */
  older: LruEntry | null = null;
  newer: LruEntry | null = null;
  /** Neighbours in the expiry list of its TTL. */
  prev: LruEntry | null = null;
  next: LruEntry | null = null;
  exp = 0;
  list: TtlList | null = null;
  constructor(
    readonly key: string,
    /** Bytes counted against the budget. */
    readonly size: number,
  ) {}
}

class TtlList {
  head: LruEntry | null = null;
  tail: LruEntry | null = null;
  constructor(readonly ttl: number) {}
}

export class ExpiringLru<E extends LruEntry> {
  private readonly map = new Map<string, E>();
  private readonly lists = new Map<number, TtlList>();
  /** Least and most recently used. */
  private oldest: LruEntry | null = null;
  private newest: LruEntry | null = null;
  private bytes = 0;

  /**
   * @param maxSize  byte budget; an entry larger than it is refused
   * @param now      clock in milliseconds (monotonic: `performance.now` or a test clock)
   * @param onRemove called for each entry that leaves (evicted, expired, replaced or deleted;
   *                 not on `clear`)
   */
  constructor(
    readonly maxSize: number,
    private readonly now: () => number,
    private readonly onRemove?: (e: E) => void,
  ) {}

  /** Entries held, expired ones not purged yet included. */
  get size(): number {
    return this.map.size;
  }

  /** Sum of the held entries' sizes. */
  get calculatedSize(): number {
    return this.bytes;
  }

  /** The entry if present and not expired, made the most recently used. */
  get(key: string): E | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.exp <= this.now()) {
      this.remove(e);
      return undefined;
    }
    this.use(e);
    return e;
  }

  /** For an entry object the caller kept (no key lookup): true if it is still held and not
   * expired, and it is made the most recently used; an expired one is removed. */
  touch(e: E): boolean {
    if (e.list === null) return false; // not held: removed entries are unlinked from their list
    if (e.exp <= this.now()) {
      this.remove(e);
      return false;
    }
    this.use(e);
    return true;
  }

  /** True if `e` (an entry object the caller kept) is held and not expired; nothing changes. */
  holds(e: E): boolean {
    return e.list !== null && e.exp > this.now();
  }

  /** Removes the entry of `key` and returns it (expired or not); undefined if there is none. */
  take(key: string): E | undefined {
    const e = this.map.get(key);
    if (e !== undefined) this.remove(e);
    return e;
  }

  /** The entry if present and not expired; recency unchanged. */
  peek(key: string): E | undefined {
    const e = this.map.get(key);
    return e !== undefined && e.exp > this.now() ? e : undefined;
  }

  has(key: string): boolean {
    return this.peek(key) !== undefined;
  }

  /**
   * Stores `e` under `e.key` as the most recently used entry, for `ttl` ms, counted as `e.size`
   * bytes; least recently used entries are evicted to make room. Returns false (and drops any
   * older entry of that key) when `e.size` alone is over the budget. An entry is set once.
   */
  set(e: E, ttl: number): boolean {
    const old = this.map.get(e.key);
    if (old !== undefined) this.remove(old);
    return this.insert(e, ttl);
  }

  /** `set` for a key the caller knows is absent (its `get` just missed): one Map probe less. */
  insert(e: E, ttl: number): boolean {
    const size = e.size;
    if (size > this.maxSize) return false;
    while (this.bytes + size > this.maxSize) this.remove(this.oldest!);
    this.map.set(e.key, e);
    this.bytes += size;
    e.older = this.newest;
    if (this.newest === null) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
    this.expireIn(e, ttl);
    return true;
  }

  /** Makes a held entry the most recently used and gives it a new TTL from now (an entry whose
   * payload changed in place, e.g. a counter), without touching the Map. */
  refresh(e: E, ttl: number): void {
    this.use(e);
    this.unlinkExpiry(e);
    this.expireIn(e, ttl);
  }

  delete(key: string): boolean {
    return this.take(key) !== undefined;
  }

  /** Drops up to `limit` expired entries; returns how many it dropped (`limit` means: maybe
   * more are due). */
  purgeExpired(limit: number): number {
    const t = this.now();
    let n = 0;
    for (const list of this.lists.values()) {
      let e = list.head;
      while (e !== null && e.exp <= t) {
        if (n >= limit) return n;
        const next = e.next;
        this.remove(e as E);
        n++;
        e = next;
      }
    }
    return n;
  }

  clear(): void {
    // Unlinked so `touch` sees them as not held.
    for (const e of this.map.values()) e.list = null;
    this.map.clear();
    this.lists.clear();
    this.oldest = this.newest = null;
    this.bytes = 0;
  }

  private use(e: LruEntry): void {
    if (e === this.newest) return;
    // unlink (e has a newer neighbour, since it is not the newest)
    if (e.older === null) this.oldest = e.newer;
    else e.older.newer = e.newer;
    e.newer!.older = e.older;
    // append
    e.older = this.newest;
    e.newer = null;
    this.newest!.newer = e;
    this.newest = e;
  }

  private expireIn(e: LruEntry, ttl: number): void {
    let list = this.lists.get(ttl);
    if (list === undefined) {
      list = new TtlList(ttl);
      this.lists.set(ttl, list);
    }
    // Whole milliseconds (rounded up: never early): an integer field stays a small integer in
    // the entry (4 bytes with pointer compression) for the first 12 days of the clock, where a
    // fractional one is a separate 16-byte heap number per entry.
    e.exp = Math.ceil(this.now()) + ttl;
    e.list = list;
    e.prev = list.tail;
    e.next = null;
    if (list.tail === null) list.head = e;
    else list.tail.next = e;
    list.tail = e;
  }

  private unlinkExpiry(e: LruEntry): void {
    const list = e.list!;
    if (e.prev === null) list.head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) list.tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = e.next = null;
    e.list = null;
    if (list.head === null) this.lists.delete(list.ttl);
  }

  private remove(e: LruEntry): void {
    this.map.delete(e.key);
    this.bytes -= e.size;
    if (e.older === null) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === null) this.newest = e.older;
    else e.newer.older = e.older;
    e.older = e.newer = null;
    this.unlinkExpiry(e);
    this.onRemove?.(e as E);
  }
}
