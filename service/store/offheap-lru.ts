// A string-keyed map with a byte budget (the least recently used entries leave first) and a TTL
// per entry, like ExpiringLru (expiring-lru.ts), but with no JS object per entry: an entry is a
// slot number, its bookkeeping lives in typed arrays and its key's characters in a SlabArena.
// The caller keeps its payload in arrays of its own indexed by slot (`onGrow` says when to grow
// them) and learns through `onRemove` when a slot leaves.
//
// Why: the memory store holds up to millions of records and counters. As JS objects (an entry, a
// key string, a Map entry each) they made V8's old generation grow with the record count, and
// every young-generation collection walks that generation's pages: ~1 ms per collection at a
// million records instead of ~0.2 ms, which was the mirror hit's p99. Typed arrays and slabs are
// a few large allocations outside the JS heap, whatever the number of entries.
//
//   - index: a hash table of chained slots (`buckets` → first slot, `chain` → next slot); the
//     hash is seeded per process, so keys chosen by a client cannot be aimed at one chain;
//   - keys: stored as Latin-1 bytes when every character fits (request ids, methods, authorities
//     and paths arrive as Latin-1 header strings), else as UTF-16 code units, so equal stored
//     bytes always mean equal strings; a lookup hashes and compares the string's characters in
//     place, without encoding it;
//   - recency and expiry: as in ExpiringLru, an LRU list, and one list per distinct TTL in set
//     order (= expiry order), so purging expired entries costs O(expired entries);
//   - slots: recycled through a free list; `gen(slot)` changes each time a slot is recycled, so a
//     (slot, gen) pair kept elsewhere can tell whether it still names the same entry.
// The arrays double when full and never shrink (a few tens of bytes per slot at the peak).
// Reads never return an expired entry, purged or not.

import { SlabArena } from "./slab-arena.ts";

const NONE = -1;
const FREE = -1; // ttlIx of a slot not in use
const INITIAL_SLOTS = 1024;
const KEY_SLAB_BYTES = 64 * 1024;
const HASH_SEED = (Math.random() * 0x100000000) | 0;

type SlotArray = Uint16Array | Int32Array | Float64Array;

/** A new array of `a`'s type with `capacity` elements, `a`'s at its start (the rest zero): how the
 * table's arrays grow, and the payload arrays of its users (see `onGrow`). */
export function grownArray<T extends SlotArray>(a: T, capacity: number): T {
  const b = new (a.constructor as new (length: number) => T)(capacity);
  b.set(a as never);
  return b;
}

/** FNV-1a over the string's UTF-16 code units, from a random seed. */
function hashOf(s: string): number {
  let h = HASH_SEED ^ 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/** True when every character of `s` is Latin-1 (stored one byte each). */
function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

export class OffHeapLru {
  private capacity = INITIAL_SLOTS;
  private used = 0; // slots ever handed out (the rest of the arrays is untouched)
  private freeSlot = NONE; // free list through `chain`
  private count = 0;
  private bytes = 0;
  private buckets = new Int32Array(INITIAL_SLOTS).fill(NONE);
  private hashes = new Int32Array(INITIAL_SLOTS);
  private chain = new Int32Array(INITIAL_SLOTS);
  private older = new Int32Array(INITIAL_SLOTS);
  private newer = new Int32Array(INITIAL_SLOTS);
  private prevExp = new Int32Array(INITIAL_SLOTS);
  private nextExp = new Int32Array(INITIAL_SLOTS);
  private exp = new Float64Array(INITIAL_SLOTS);
  private sizes = new Float64Array(INITIAL_SLOTS);
  private ttlIx = new Int32Array(INITIAL_SLOTS).fill(FREE);
  private gens = new Int32Array(INITIAL_SLOTS);
  private keySlab = new Int32Array(INITIAL_SLOTS);
  private keyOff = new Int32Array(INITIAL_SLOTS);
  /** Characters of the key; negative when stored as UTF-16 (2 bytes each). */
  private keyLen = new Int32Array(INITIAL_SLOTS);
  private readonly keys = new SlabArena(KEY_SLAB_BYTES);
  /** Least and most recently used. */
  private oldest = NONE;
  private newest = NONE;
  /** Expiry lists, one per distinct TTL: ttls[i], heads[i], tails[i]. */
  private readonly ttls: number[] = [];
  private readonly heads: number[] = [];
  private readonly tails: number[] = [];
  private readonly ttlIndex = new Map<number, number>();
  /** The hash of the key `find` looked up last, reused by an `insert` of that same string. */
  private lastKey: string | undefined = undefined;
  private lastHash = 0;

  /**
   * @param maxSize  byte budget; an entry larger than it is refused
   * @param now      clock in milliseconds (monotonic: `performance.now` or a test clock)
   * @param onRemove called with each slot that leaves (evicted, expired, replaced or deleted;
   *                 not on `clear`), before the slot is recycled
   * @param onGrow   called with the new slot count whenever the table grows (and once now):
   *                 payload arrays indexed by slot must hold that many
   */
  constructor(
    readonly maxSize: number,
    private readonly now: () => number,
    private readonly onRemove?: (slot: number) => void,
    private readonly onGrow?: (capacity: number) => void,
  ) {
    onGrow?.(INITIAL_SLOTS);
  }

  /** Entries held, expired ones not purged yet included. */
  get size(): number {
    return this.count;
  }

  /** Sum of the held entries' sizes. */
  get calculatedSize(): number {
    return this.bytes;
  }

  /** Identity of what `slot` holds now: changes whenever the slot is recycled. */
  gen(slot: number): number {
    return this.gens[slot];
  }

  /** The slot of `key` if present and not expired (an expired one is removed), else -1. Recency
   * unchanged. */
  find(key: string): number {
    const s = this.slotOf(key);
    if (s !== NONE && this.exp[s] <= this.now()) {
      this.remove(s);
      return NONE;
    }
    return s;
  }

  /** `find`, and the entry found is made the most recently used. */
  get(key: string): number {
    const s = this.find(key);
    if (s !== NONE) this.use(s);
    return s;
  }

  has(key: string): boolean {
    return this.find(key) !== NONE;
  }

  /** True if `slot` still holds the entry `gen` named and it has not expired; nothing changes. */
  holds(slot: number, gen: number): boolean {
    return this.gens[slot] === gen && this.ttlIx[slot] !== FREE && this.exp[slot] > this.now();
  }

  /** `holds`, and the entry is made the most recently used; an expired one is removed. */
  touch(slot: number, gen: number): boolean {
    if (this.gens[slot] !== gen || this.ttlIx[slot] === FREE) return false;
    if (this.exp[slot] <= this.now()) {
      this.remove(slot);
      return false;
    }
    this.use(slot);
    return true;
  }

  /**
   * Stores `key` as the most recently used entry for `ttl` ms, counted as `size` bytes, replacing
   * any entry of that key; least recently used entries are evicted to make room. Returns the slot,
   * or -1 (and the older entry of that key is gone) when `size` alone is over the budget.
   */
  set(key: string, size: number, ttl: number): number {
    const old = this.find(key);
    if (old !== NONE) this.remove(old);
    return this.insert(key, size, ttl);
  }

  /** `set` for a key the caller knows is absent (its `find` just missed): no second probe. */
  insert(key: string, size: number, ttl: number): number {
    if (size > this.maxSize) return NONE;
    const h = key === this.lastKey ? this.lastHash : hashOf(key);
    this.lastKey = undefined; // evictions below may recycle slots, never the cached hash's key
    while (this.bytes + size > this.maxSize) this.remove(this.oldest);
    const s = this.allocSlot();
    this.count++;
    if (this.count > this.buckets.length) this.rehash(this.buckets.length * 2);
    // key
    const latin1 = isLatin1(key);
    const n = key.length;
    const off = this.keys.alloc(latin1 ? n : 2 * n);
    const slab = this.keys.slab;
    if (n > 0) this.keys.buffer(slab).write(key, off, latin1 ? "latin1" : "utf16le");
    this.keySlab[s] = slab;
    this.keyOff[s] = off;
    this.keyLen[s] = latin1 ? n : -n;
    // index
    this.hashes[s] = h;
    const b = h & (this.buckets.length - 1);
    this.chain[s] = this.buckets[b];
    this.buckets[b] = s;
    // budget and recency
    this.sizes[s] = size;
    this.bytes += size;
    this.appendRecent(s);
    this.expireIn(s, ttl);
    return s;
  }

  /** Makes a held entry the most recently used and gives it a new TTL from now. */
  refresh(slot: number, ttl: number): void {
    this.use(slot);
    this.unlinkExpiry(slot);
    this.expireIn(slot, ttl);
  }

  /** Removes the entry of `key` (expired or not); false if there is none. */
  delete(key: string): boolean {
    const s = this.slotOf(key);
    if (s !== NONE) this.remove(s);
    return s !== NONE;
  }

  /** Drops up to `limit` expired entries; returns how many it dropped (`limit` means: maybe
   * more are due). */
  purgeExpired(limit: number): number {
    const t = this.now();
    let n = 0;
    for (let i = 0; i < this.heads.length; i++) {
      let s = this.heads[i];
      while (s !== NONE && this.exp[s] <= t) {
        if (n >= limit) return n;
        const next = this.nextExp[s];
        this.remove(s);
        n++;
        s = next;
      }
    }
    return n;
  }

  /** Removes the entry in `slot` (which must be held). */
  remove(s: number): void {
    // out of its chain
    const b = this.hashes[s] & (this.buckets.length - 1);
    if (this.buckets[b] === s) this.buckets[b] = this.chain[s];
    else {
      let p = this.buckets[b];
      while (this.chain[p] !== s) p = this.chain[p];
      this.chain[p] = this.chain[s];
    }
    this.unlinkRecent(s);
    this.unlinkExpiry(s);
    this.bytes -= this.sizes[s];
    this.count--;
    this.onRemove?.(s);
    this.keys.free(this.keySlab[s]);
    this.ttlIx[s] = FREE;
    this.gens[s] = (this.gens[s] + 1) | 0;
    this.chain[s] = this.freeSlot;
    this.freeSlot = s;
  }

  clear(): void {
    for (let s = 0; s < this.used; s++) {
      if (this.ttlIx[s] !== FREE) this.gens[s] = (this.gens[s] + 1) | 0; // (slot, gen) pairs kept elsewhere stop matching
      this.ttlIx[s] = FREE;
      this.chain[s] = s + 1 < this.used ? s + 1 : NONE;
    }
    this.freeSlot = this.used > 0 ? 0 : NONE;
    this.buckets.fill(NONE);
    this.keys.clear();
    this.oldest = this.newest = NONE;
    this.count = 0;
    this.bytes = 0;
    this.ttls.length = this.heads.length = this.tails.length = 0;
    this.ttlIndex.clear();
    this.lastKey = undefined;
  }

  /** The slot holding `key`, expired or not, else -1; its hash is kept for an `insert` of it. */
  private slotOf(key: string): number {
    const h = hashOf(key);
    this.lastKey = key;
    this.lastHash = h;
    for (let s = this.buckets[h & (this.buckets.length - 1)]; s !== NONE; s = this.chain[s]) {
      if (this.hashes[s] === h && this.keyIs(s, key)) return s;
    }
    return NONE;
  }

  private keyIs(s: number, key: string): boolean {
    const len = this.keyLen[s];
    const buf = this.keys.buffer(this.keySlab[s]);
    const off = this.keyOff[s];
    if (len >= 0) {
      if (len !== key.length) return false;
      for (let i = 0; i < len; i++) if (buf[off + i] !== key.charCodeAt(i)) return false;
      return true;
    }
    if (-len !== key.length) return false;
    for (let i = 0, o = off; i < -len; i++, o += 2) if ((buf[o] | (buf[o + 1] << 8)) !== key.charCodeAt(i)) return false;
    return true;
  }

  private use(s: number): void {
    if (s === this.newest) return;
    this.unlinkRecent(s);
    this.appendRecent(s);
  }

  /** Takes `s` out of the recency list. */
  private unlinkRecent(s: number): void {
    const o = this.older[s];
    const w = this.newer[s];
    if (o === NONE) this.oldest = w;
    else this.newer[o] = w;
    if (w === NONE) this.newest = o;
    else this.older[w] = o;
  }

  /** Puts `s` at the recency list's newest end. */
  private appendRecent(s: number): void {
    this.older[s] = this.newest;
    this.newer[s] = NONE;
    if (this.newest === NONE) this.oldest = s;
    else this.newer[this.newest] = s;
    this.newest = s;
  }

  private expireIn(s: number, ttl: number): void {
    let i = this.ttlIndex.get(ttl);
    if (i === undefined) {
      i = this.ttls.length;
      this.ttls.push(ttl);
      this.heads.push(NONE);
      this.tails.push(NONE);
      this.ttlIndex.set(ttl, i);
    }
    this.exp[s] = Math.ceil(this.now()) + ttl; // whole ms, rounded up: never early
    this.ttlIx[s] = i;
    const tail = this.tails[i];
    this.prevExp[s] = tail;
    this.nextExp[s] = NONE;
    if (tail === NONE) this.heads[i] = s;
    else this.nextExp[tail] = s;
    this.tails[i] = s;
  }

  // An emptied TTL list is kept (a service uses one or two TTLs; a list costs three numbers).
  private unlinkExpiry(s: number): void {
    const i = this.ttlIx[s];
    const p = this.prevExp[s];
    const n = this.nextExp[s];
    if (p === NONE) this.heads[i] = n;
    else this.nextExp[p] = n;
    if (n === NONE) this.tails[i] = p;
    else this.prevExp[n] = p;
  }

  private allocSlot(): number {
    if (this.freeSlot !== NONE) {
      const s = this.freeSlot;
      this.freeSlot = this.chain[s];
      return s;
    }
    if (this.used === this.capacity) this.grow(this.capacity * 2);
    return this.used++;
  }

  private grow(capacity: number): void {
    this.hashes = grownArray(this.hashes, capacity);
    this.chain = grownArray(this.chain, capacity);
    this.older = grownArray(this.older, capacity);
    this.newer = grownArray(this.newer, capacity);
    this.prevExp = grownArray(this.prevExp, capacity);
    this.nextExp = grownArray(this.nextExp, capacity);
    this.ttlIx = grownArray(this.ttlIx, capacity);
    this.ttlIx.fill(FREE, this.capacity);
    this.gens = grownArray(this.gens, capacity);
    this.keySlab = grownArray(this.keySlab, capacity);
    this.keyOff = grownArray(this.keyOff, capacity);
    this.keyLen = grownArray(this.keyLen, capacity);
    this.exp = grownArray(this.exp, capacity);
    this.sizes = grownArray(this.sizes, capacity);
    this.capacity = capacity;
    this.onGrow?.(capacity);
  }

  private rehash(n: number): void {
    const buckets = new Int32Array(n).fill(NONE);
    const mask = n - 1;
    for (let s = 0; s < this.used; s++) {
      if (this.ttlIx[s] === FREE) continue;
      const b = this.hashes[s] & mask;
      this.chain[s] = buckets[b];
      buckets[b] = s;
    }
    this.buckets = buckets;
  }
}
