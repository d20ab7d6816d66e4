// In-memory CacheStore: one process, records in an LRU with a byte budget and a TTL per record.
//
// Records:   an ExpiringLru (expiring-lru.ts) whose byte budget is `maxBytes`, each record
//            counted as body + Σ(header name + value + HEADER_OVERHEAD) + key + RECORD_OVERHEAD
//            (the overheads are measured by `npx tsx bench/service/run.ts --only memory`).
// Metadata:  sequence counters (keyed by the tuple itself) and claims (keyed by the record key,
//            in flight only) are two more ExpiringLrus that share the metadata byte budget
//            (`maxMetaBytes`, default a quarter of `maxBytes`: counters get three quarters of it,
//            claims one), so a client sending endless unique tuples evicts old counters instead of
//            growing memory without limit. Claims have a map of their own because they are few
//            and short-lived: their inserts and deletes then stay in a small, cache-warm table
//            instead of churning the large counter map.
// Hit path:  a tuple's counter links to the tuple's first record (n = 0, nearly every call), so
//            a mirror hit costs one map lookup (the counter it must update anyway), not two: the
//            record map is probed with the full key only for n > 0. The link is made by `put`
//            from the claim `begin` took (which knows its counter), and cleared when either side
//            leaves, so it never keeps an evicted body alive.
// Test path: `begin` is one counter lookup and one record probe (plus the claim's small map);
//            `put` one record insert. Every key is hashed once: the same string objects are
//            passed along (V8 caches a string's hash in the string).
// Expiry:    reads never see an expired entry; a background sweep drops expired entries in
//            batches of PURGE_BATCH, yielding to I/O between batches, so no pause grows with the
//            number of records.
// Waiters:   waiters.ts (shared with the redis store), per record key; `put` wakes them with the
//            value it stores (even when the value is too large to be kept), a timer or an abort
//            signal resolves one with `undefined`, `close` resolves them all with `undefined`.
//
// `put` keeps its own StoredResponse (same status, equal headers, same body bytes; header lists
// and header pair arrays shared between records), and `get`/`lookup`/`wait` return that object
// itself, without copying: callers must treat a StoredResponse as immutable. Smaller bodies are
// copied into shared slabs (see createSlabs). Bodies of
// POOL_MIN_BYTES and more are copied into reused buffers (body-pool.ts), or adopted as they are
// when `bodyBuffer` handed them out (the forwarder gathers a streamed answer into one): each
// record handed out is leased, and its `release()` (called by sendRecord once the answer is
// written) lets the buffer be reused after the record has left the store.
import { callKey } from "../key.ts";
import { BodyPool, POOL_MIN_BYTES } from "./body-pool.ts";
import { ExpiringLru, LruEntry } from "./expiring-lru.ts";
import { StoreUnavailableError, type Begin, type CacheStore, type Lookup, type Stack, type StoredResponse, type StoreStats } from "./types.ts";
import { Waiters } from "./waiters.ts";

/** Bytes counted per record on top of its body, headers and key: the map entry and TTL-list links,
 * the record object and the headers array. Measured on Node 20 x64 (bench/service/run.ts `memory`
 * section, four headers): 80 B beyond the body, key and header characters when header pairs repeat
 * across records, 266 B when every record has header values of its own; with HEADER_OVERHEAD per
 * pair, the budget counts at least what the worst case uses. */
export const RECORD_OVERHEAD = 160;
/** Bytes counted per header pair on top of the name and value characters (the pair array). */
export const HEADER_OVERHEAD = 32;
/** Bytes counted per sequence counter or claim on top of its key characters. */
export const META_OVERHEAD = 128;

export interface MemoryStoreOptions {
  /** Byte budget of the records (bodies + headers + keys + per-record overhead). */
  maxBytes: number;
  /** Byte budget of sequence counters and claims (keys + META_OVERHEAD each): three quarters
   * for counters, one for claims. Default: a quarter of `maxBytes`, at least 1 MiB. */
  maxMetaBytes?: number;
  /** Clock for TTLs, in milliseconds (tests). Default `performance.now`. */
  now?: () => number;
  /** Drop expired records, counters and claims every this many ms (0: only when touched,
   * evicted or counted by `stats()`). Without it, expired records linger until the byte budget
   * pushes them out, so memory climbs to the budget instead of following the live set.
   * Default 1000. */
  purgeIntervalMs?: number;
}

/** Bytes a record is counted for in the budget. */
export function recordSize(key: string, value: StoredResponse): number {
  return sizeOf(key, value.headers, value.body.length);
}

/** `bodyBytes`: the body's length, or the size of its pooled buffer. */
function sizeOf(key: string, h: ReadonlyArray<readonly [string, string]>, bodyBytes: number): number {
  let n = bodyBytes + key.length + RECORD_OVERHEAD;
  for (let i = 0; i < h.length; i++) {
    const pair = h[i];
    n += pair[0].length + pair[1].length + HEADER_OVERHEAD;
  }
  return n;
}

const EMPTY_BODY = Buffer.alloc(0);

/** Small bodies (under POOL_MIN_BYTES) are copied into shared slabs of this size. */
export const SLAB_BYTES = 128 * 1024;

/** A bump allocator of small record bodies: each body is copied into the current slab (one
 * ArrayBuffer shared by the hundred or so records written after one another), and a slab is freed
 * by the garbage collector once no record in it is left. Why: a recorded body used to be a view
 * into the socket read it arrived in, one ArrayBuffer per record, with the answer's head bytes in
 * it that the budget did not count. A full store held ~180k ArrayBuffers at 1 KiB, which V8
 * sweeps on the main thread around every full collection (8–16 ms steps, `--trace-gc-nvp`
 * `sweep_array_buffers`; the test path's p99 did not move measurably without them, though).
 * A record keeps the slab's one Buffer and its own offset and length, not a Buffer view of its
 * own: a view is ~100 B of heap, a quarter of what a record costs beyond its body (see
 * RecordEntry.body). Records leave the store about in the order they came (TTL, least recently
 * used), so slabs die in order too; a record that outlives its neighbours keeps at most one slab
 * alive, until its TTL. */
function createSlabs(): { copy(body: Buffer): number; slab: Buffer; clear(): void } {
  let used = SLAB_BYTES;
  return {
    /** Copies `body` into `this.slab` (a new one when it does not fit) and returns its offset. */
    copy(body) {
      const n = body.length;
      if (used + n > SLAB_BYTES) {
        this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        used = 0;
      }
      const at = used;
      body.copy(this.slab, at);
      used += (n + 7) & ~7; // 8-byte aligned, like an allocation of its own
      return at;
    },
    slab: EMPTY_BODY,
    clear() {
      this.slab = EMPTY_BODY;
      used = SLAB_BYTES;
    },
  };
}

function positiveInt(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new TypeError(`${name} must be a positive number (got ${v})`);
  return Math.floor(v);
}

// The service builds keys by concatenation (`tuple + "\n" + n`), which V8 keeps as a rope of
// ConsStrings pointing at every piece (request id, authority, path…): ~700 B for a typical key
// when kept as is. Reading a character flattens the rope into one sequential string, so the
// store retains only that. (The result goes to a module variable so it is not optimized away.)
let flatSink = 0;
export function flatten(s: string): string {
  flatSink ^= s.charCodeAt(0);
  return s;
}

// Header pairs repeat across records (content-type, cache-control, content-length of same-size
// bodies, date within one second…): records share one [name, value] array per distinct pair.
// The pool is bounded (cleared when full); pairs with long values are not pooled. Whole header
// lists repeat too (one upstream answering the same way, the date changing once a second): a
// record whose headers equal the previous record's gets that record's array itself, which costs
// neither a new array nor a pool lookup per pair.
const PAIR_POOL_MAX = 4096;
const PAIR_VALUE_MAX = 200;
function createHeaderPool(): (headers: Array<[string, string]>) => Array<[string, string]> {
  let pool = new Map<string, [string, string]>();
  let last: Array<[string, string]> = [];
  return (headers) => {
    if (sameHeaders(last, headers)) return last;
    const out: Array<[string, string]> = new Array(headers.length);
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i];
      const name = pair[0];
      const value = pair[1];
      if (value.length > PAIR_VALUE_MAX || name.length > PAIR_VALUE_MAX) {
        out[i] = [flatten(name), flatten(value)];
        continue;
      }
      const id = name + "\0" + value;
      let shared = pool.get(id);
      if (shared === undefined) {
        if (pool.size >= PAIR_POOL_MAX) pool = new Map();
        shared = [flatten(name), flatten(value)];
        pool.set(flatten(id), shared);
      }
      out[i] = shared;
    }
    last = out;
    return out;
  };
}

function sameHeaders(a: ReadonlyArray<readonly [string, string]>, b: ReadonlyArray<readonly [string, string]>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i][0] !== b[i][0] || a[i][1] !== b[i][1]) return false;
  return true;
}

/** A record as the store keeps it: the StoredResponse and its map entry in one object. */
class RecordEntry extends LruEntry implements StoredResponse {
  constructor(
    key: string,
    readonly status: number,
    readonly headers: Array<[string, string]>,
    /** The body's bytes are `buf[off, off + len)`: a slab shared with other records, or the
     * record's own buffer (off 0, len its length). */
    protected readonly buf: Buffer,
    private readonly off: number,
    private readonly len: number,
    bodyBytes = len,
  ) {
    super(key, sizeOf(key, headers, bodyBytes));
  }
  /** The body as a Buffer: the record's own buffer, or a view of its slab made on each read (a
   * short-lived object, where a view kept per record would cost ~100 B of heap per record). */
  get body(): Buffer {
    const b = this.buf;
    return this.off === 0 && this.len === b.length ? b : b.subarray(this.off, this.off + this.len);
  }
  /** A reader more (see PooledRecordEntry). */
  lease(_readers: number): this {
    return this;
  }
  /** Only on pooled records: a plain record's body is the garbage collector's, and its readers
   * then skip the release callback entirely. */
  declare release?: () => void;
  /** The counter of this record's tuple, when this is the tuple's first record (n = 0) and the
   * counter links to it (see CounterEntry.first). */
  owner: CounterEntry | null = null;
}

/** A record whose body is a BodyPool buffer: the buffer goes back to the pool once the record has
 * left the store and every reader it was handed to has released it. */
class PooledRecordEntry extends RecordEntry {
  /** 1 while in the store, plus one per reader that has not released it yet. */
  private leases = 1;
  constructor(
    key: string,
    status: number,
    headers: Array<[string, string]>,
    own: Buffer,
    private readonly pool: BodyPool,
  ) {
    super(key, status, headers, own, 0, own.length, own.buffer.byteLength); // the whole buffer counts
  }
  override lease(readers: number): this {
    this.leases += readers;
    return this;
  }
  override release = (): void => {
    if (--this.leases === 0) this.pool.give(this.buf);
  };
}

/** A tuple's sequence counter (both stacks, packed: see `count`), and a link to the tuple's
 * first record while both are held. */
class CounterEntry extends LruEntry {
  first: RecordEntry | null = null;
  constructor(
    tuple: string,
    public value: number,
  ) {
    super(tuple, tuple.length + META_OVERHEAD);
  }
}

/** A claim on a record key; `counter`: the tuple's counter when the key is its first (n = 0),
 * so that `put` can link the record to it. */
class ClaimEntry extends LruEntry {
  constructor(
    key: string,
    readonly counter: CounterEntry | null,
  ) {
    super(key, key.length + META_OVERHEAD);
  }
}

/** Makes `r` the first record of counter `c`, dropping any earlier link of either. */
function link(c: CounterEntry, r: RecordEntry): void {
  if (c.first !== null) unlink(c, c.first);
  if (r.owner !== null) unlink(r.owner, r);
  c.first = r;
  r.owner = c;
}

/** Drops the link between a counter and its first record (either side leaving its map). */
function unlink(c: CounterEntry, r: RecordEntry): void {
  c.first = null;
  r.owner = null;
}

/** Most expired entries one sweep step drops before it yields to I/O (≈ 0.5 ms of work: about
 * 0.5 µs per entry on the bench machine). */
export const PURGE_BATCH = 1024;

const closedError = () => new StoreUnavailableError("memory store is closed");
/** Calls of `stack` counted in a packed counter value (test + mirror · COUNT_SPAN). */
function countOf(stack: Stack, v: number): number {
  return stack === "test" ? v % COUNT_SPAN : Math.floor(v / COUNT_SPAN);
}
const UNDEFINED: Promise<undefined> = Promise.resolve(undefined);
const COUNT_SPAN = 2 ** 26;

export function createMemoryStore(options: MemoryStoreOptions): CacheStore {
  const maxBytes = positiveInt("maxBytes", options.maxBytes);
  const maxMetaBytes = positiveInt("maxMetaBytes", options.maxMetaBytes ?? Math.max(1 << 20, Math.floor(maxBytes / 4)));
  const now = options.now ?? (() => performance.now());
  // Bodies of POOL_MIN_BYTES and more live in reused buffers (body-pool.ts); idle ones are
  // bounded by an eighth of the budget, at most 64 MiB.
  const pool = new BodyPool(Math.min(64 * 1024 * 1024, Math.floor(maxBytes / 8)));
  // A record leaving the store drops the store's own lease on it, and its counter's link.
  const records = new ExpiringLru<RecordEntry>(maxBytes, now, (e) => {
    if (e.owner !== null) unlink(e.owner, e);
    e.release?.();
  });
  // Counters: tuple → next n of both stacks, packed. Claims: record key → the claim.
  const claimBudget = Math.floor(maxMetaBytes / 4);
  const counters = new ExpiringLru<CounterEntry>(maxMetaBytes - claimBudget, now, (e) => {
    if (e.first !== null) unlink(e, e.first);
  });
  const claims = new ExpiringLru<ClaimEntry>(claimBudget, now);

  const waiters = new Waiters();
  // Pool buffers handed out by `bodyBuffer` and not put yet: `put` adopts these without a copy.
  const handedOut = new WeakSet<ArrayBuffer>();
  const internHeaders = createHeaderPool();
  const slabs = createSlabs();
  let closed = false;

  // Background expiry: one step drops up to PURGE_BATCH entries of each map; a step that hit its
  // limit schedules the next one right after pending I/O.
  let sweepQueued = false;
  const sweep = (): void => {
    sweepQueued = false;
    if (closed) return;
    const more = records.purgeExpired(PURGE_BATCH) === PURGE_BATCH;
    const moreCounters = counters.purgeExpired(PURGE_BATCH) === PURGE_BATCH;
    const moreClaims = claims.purgeExpired(PURGE_BATCH) === PURGE_BATCH;
    if ((more || moreCounters || moreClaims) && !sweepQueued) {
      sweepQueued = true;
      setImmediate(sweep);
    }
  };
  const purgeEvery = options.purgeIntervalMs ?? 1000;
  const purgeTimer =
    purgeEvery > 0
      ? setInterval(() => {
          if (!sweepQueued) sweep();
        }, purgeEvery).unref()
      : undefined;

  function ttlOf(ttlMs: number): number {
    const t = Math.ceil(ttlMs);
    if (!(t > 0)) throw new TypeError(`ttlMs must be a positive number (got ${ttlMs})`);
    return t;
  }

  /** Moves the tuple's counter of `stack` on and returns the counter: `n` of this call is
   * `countOf(stack, counter) - 1` (see `sequence`). A new counter is keyed by `tuple` itself,
   * flattened (`begin` passes a slice of the record key, which is already flat). */
  function count(stack: Stack, tuple: string, ttlMs: number): CounterEntry {
    // One entry per tuple holds both stacks' counters (test + mirror · 2^26): the mirror call
    // of an exchange updates the entry its test call created instead of adding a key of its
    // own (half the memory, and no new key on the mirror hit path).
    const e = counters.get(tuple);
    const v = e === undefined ? 0 : e.value;
    if (countOf(stack, v) + 1 >= COUNT_SPAN) throw new RangeError(`more than ${COUNT_SPAN - 1} ${stack} calls of one tuple within its TTL`);
    const next = stack === "test" ? v + 1 : v + COUNT_SPAN;
    // A new TTL from now, like INCR + PEXPIRE on Redis.
    if (e === undefined) {
      const c = new CounterEntry(flatten(tuple), next);
      counters.insert(c, ttlOf(ttlMs)); // absent: `get` just missed (and dropped an expired one)
      return c;
    }
    e.value = next;
    counters.refresh(e, ttlOf(ttlMs));
    return e;
  }

  /** Claims `key` unless it is held or already recorded (put drops the claim entry: the record
   * answers instead). A claim the budget cannot hold is still won (the call is forwarded; only
   * single-flight for that key is lost). */
  function tryClaim(key: string, ttl: number, counter: CounterEntry | null): boolean {
    if (claims.has(key) || records.has(key)) return false;
    claims.set(new ClaimEntry(key, counter), ttl);
    return true;
  }

  const store: CacheStore = {
    kind: "memory",

    sequence(stack: Stack, tuple: string, ttlMs: number): Promise<number> {
      if (closed) return Promise.reject(closedError());
      try {
        return Promise.resolve(countOf(stack, count(stack, tuple, ttlMs).value) - 1);
      } catch (err) {
        return Promise.reject(err);
      }
    },

    lookupNow(stack: Stack, tuple: string, ttlMs: number): Lookup {
      if (closed) throw closedError();
      const c = count(stack, tuple, ttlMs);
      const n = countOf(stack, c.value) - 1;
      // The tuple's first record through the counter's link: no second map lookup.
      if (n === 0 && c.first !== null && records.touch(c.first)) return { key: callKey(tuple, 0), record: c.first.lease(1) };
      const key = callKey(tuple, n);
      return { key, record: records.get(key)?.lease(1) };
    },

    lookup(stack: Stack, tuple: string, ttlMs: number): Promise<Lookup> {
      try {
        return Promise.resolve(store.lookupNow!(stack, tuple, ttlMs));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    begin(tuple: string, ttlMs: number, claimTtlMs: number): Promise<Begin> {
      if (closed) return Promise.reject(closedError());
      try {
        const claimTtl = ttlOf(claimTtlMs); // checked before the counter moves, as on Redis
        // Nearly every test call is the first of its tuple: its key is built before counting, and
        // the counter is looked up (and, when new, keyed) by a slice of it. V8 keeps a slice as a
        // reference into the flat key (~24 B, where a flat copy of the tuple is ~110 B), and the
        // tuple's own rope is never flattened. The key is rebuilt when n > 0.
        const first = flatten(callKey(tuple, 0));
        const c = count("test", first.slice(0, tuple.length), ttlMs);
        const n = countOf("test", c.value) - 1;
        const key = n === 0 ? first : flatten(callKey(tuple, n));
        return Promise.resolve({ key, won: tryClaim(key, claimTtl, n === 0 ? c : null) });
      } catch (err) {
        return Promise.reject(err);
      }
    },

    claim(key: string, ttlMs: number): Promise<boolean> {
      if (closed) return Promise.reject(closedError());
      try {
        return Promise.resolve(tryClaim(flatten(key), ttlOf(ttlMs), null));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    release(key: string): Promise<void> {
      if (closed) return Promise.reject(closedError());
      claims.delete(key);
      return Promise.resolve();
    },

    put(key: string, value: StoredResponse, ttlMs: number): Promise<void> {
      if (closed) return Promise.reject(closedError());
      const ttl = ttlOf(ttlMs);
      // A record of our own: flat key, pooled headers, the body in a slab or a pooled buffer.
      key = flatten(key);
      const headers = internHeaders(value.headers);
      const body = value.body;
      let v: RecordEntry;
      if (body.length >= POOL_MIN_BYTES) {
        let own: Buffer;
        if (handedOut.delete(body.buffer as ArrayBuffer) && body.byteOffset === 0) own = body;
        else {
          own = pool.take(body.length);
          body.copy(own);
        }
        v = new PooledRecordEntry(key, value.status, headers, own, pool);
      } else if (body.length === 0) v = new RecordEntry(key, value.status, headers, EMPTY_BODY, 0, 0); // never a view of the caller's buffer, which it would keep alive
      else {
        const at = slabs.copy(body);
        v = new RecordEntry(key, value.status, headers, slabs.slab, at, body.length);
      }
      // A record larger than the whole budget is not kept (set refuses it and drops any older
      // record under that key), but its waiters still get it below.
      const stored = records.set(v, ttl);
      const claim = claims.take(key);
      // The tuple's first record: linked from its counter, which `begin` kept in the claim (when
      // the counter is still held).
      if (stored && claim !== undefined && claim.counter !== null && counters.holds(claim.counter)) link(claim.counter, v);
      v.lease(waiters.count(key));
      waiters.wake(key, v);
      return Promise.resolve();
    },

    bodyBuffer(length: number): Buffer {
      if (length < POOL_MIN_BYTES) return Buffer.allocUnsafeSlow(length);
      const b = pool.take(length);
      handedOut.add(b.buffer as ArrayBuffer);
      return b;
    },

    get(key: string): Promise<StoredResponse | undefined> {
      if (closed) return Promise.reject(closedError());
      const v = records.get(key);
      return v === undefined ? UNDEFINED : Promise.resolve(v.lease(1));
    },

    wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredResponse | undefined> {
      if (closed) return UNDEFINED;
      const v = records.get(key);
      if (v !== undefined) return Promise.resolve(v.lease(1));
      if (!(timeoutMs > 0) || signal?.aborted) return UNDEFINED;
      return waiters.wait(key, timeoutMs, signal);
    },

    ping(): Promise<void> {
      return closed ? Promise.reject(closedError()) : Promise.resolve();
    },

    /** Expired records are dropped first, at most PURGE_BATCH of them (the background sweep
     * does the rest): exact whenever the sweep keeps up, never a long pause for a scrape. */
    stats(): StoreStats {
      records.purgeExpired(PURGE_BATCH);
      return { entries: records.size, bytes: records.calculatedSize };
    },

    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      if (purgeTimer) clearInterval(purgeTimer);
      waiters.closeAll();
      records.clear();
      counters.clear();
      claims.clear();
      pool.clear();
      slabs.clear();
      return Promise.resolve();
    },
  };

  // Introspection for the memory-only tests and the bench (not part of CacheStore).
  Object.defineProperty(store, "debug", {
    enumerable: false,
    value: () => ({
      waiters: waiters.size,
      records: records.size,
      metaEntries: counters.size + claims.size,
      metaBytes: counters.calculatedSize + claims.calculatedSize,
      maxMetaBytes,
    }),
  });
  return store;
}

/** Test/bench introspection of a memory store. */
export function memoryStoreDebug(store: CacheStore): { waiters: number; records: number; metaEntries: number; metaBytes: number; maxMetaBytes: number } {
  const fn = (store as unknown as { debug?: () => ReturnType<typeof memoryStoreDebug> }).debug;
  if (!fn) throw new TypeError("not a memory store");
  return fn();
}
