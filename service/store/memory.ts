// In-memory CacheStore: one process, records in an LRU with a byte budget and a TTL per record.
//
// Records:   lru-cache, `maxSize` = the byte budget, each record counted as
//            body + Σ(header name + value + HEADER_OVERHEAD) + key + RECORD_OVERHEAD
//            (the overheads are measured by `npx tsx bench/service/run.ts --only memory`).
// Metadata:  sequence counters and claims share a second LRU with its own byte budget
//            (`maxMetaBytes`, default a quarter of `maxBytes`), so a client sending endless
//            unique tuples evicts old counters instead of growing memory without limit.
// Waiters:   waiters.ts (shared with the redis store), per record key; `put` wakes them with the
//            value it stores (even when the value is too large to be kept), a timer or an abort
//            signal resolves one with `undefined`, `close` resolves them all with `undefined`.
//
// `put` keeps its own StoredResponse (same status, equal headers, same body bytes; header pair
// arrays shared between records), and `get`/`wait` return that object itself, without copying:
// callers must treat a StoredResponse as immutable.
import { LRUCache } from "lru-cache";
import { StoreUnavailableError, type CacheStore, type Stack, type StoredResponse, type StoreStats } from "./types.ts";
import { Waiters } from "./waiters.ts";

/** Bytes counted per record on top of its body, headers and key: the lru-cache slots, the
 * StoredResponse object, the Buffer view and the headers array (measured on Node 20 x64, see
 * bench/service/run.ts `memory` section). */
export const RECORD_OVERHEAD = 256;
/** Bytes counted per header pair on top of the name and value characters (the pair array). */
export const HEADER_OVERHEAD = 32;
/** Bytes counted per sequence counter or claim on top of its key characters. */
export const META_OVERHEAD = 128;

export interface MemoryStoreOptions {
  /** Byte budget of the records (bodies + headers + keys + per-record overhead). */
  maxBytes: number;
  /** Byte budget of sequence counters and claims (keys + META_OVERHEAD each).
   * Default: a quarter of `maxBytes`, at least 1 MiB. */
  maxMetaBytes?: number;
  /** Clock for TTLs, in milliseconds (tests). Default `performance.now`. */
  now?: () => number;
  /** Drop expired records, counters and claims every this many ms (0: only when touched or
   * evicted). Without it, expired records linger until the byte budget pushes them out, so memory
   * climbs to the budget instead of following the live set. Default 5000. */
  purgeIntervalMs?: number;
}

/** Bytes a record is counted for in the budget. */
export function recordSize(key: string, value: StoredResponse): number {
  let n = value.body.length + key.length + RECORD_OVERHEAD;
  const h = value.headers;
  for (let i = 0; i < h.length; i++) {
    const pair = h[i];
    n += pair[0].length + pair[1].length + HEADER_OVERHEAD;
  }
  return n;
}

// A body that is a small view into a much larger ArrayBuffer (e.g. a subarray of a big read)
// would keep the whole ArrayBuffer alive while the budget counts only the view: copy those.
// Views into Node's 8 KiB allocation pool are left alone (the pool is shared, not wasted).
function compactBody(body: Buffer): Buffer {
  if (body.buffer.byteLength - body.length > 8192) {
    const copy = Buffer.allocUnsafeSlow(body.length);
    body.copy(copy);
    return copy;
  }
  return body;
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
// The pool is bounded (cleared when full); pairs with long values are not pooled.
const PAIR_POOL_MAX = 4096;
const PAIR_VALUE_MAX = 200;
function createPairPool(): (headers: Array<[string, string]>) => Array<[string, string]> {
  let pool = new Map<string, [string, string]>();
  return (headers) => {
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
    return out;
  };
}

const closedError = () => new StoreUnavailableError("memory store is closed");
const UNDEFINED: Promise<undefined> = Promise.resolve(undefined);
const COUNT_SPAN = 2 ** 26;

export function createMemoryStore(options: MemoryStoreOptions): CacheStore {
  const maxBytes = positiveInt("maxBytes", options.maxBytes);
  const maxMetaBytes = positiveInt("maxMetaBytes", options.maxMetaBytes ?? Math.max(1 << 20, Math.floor(maxBytes / 4)));
  // lru-cache reads a start time of 0 as "no TTL": shift an injected clock away from 0.
  const now = options.now;
  const perf = now ? { now: () => now() + 1e6 } : undefined;
  // With an injected clock, don't let lru-cache debounce now() (it caches it for 1 ms of real time).
  const ttlResolution = perf ? 0 : 1;

  const records = new LRUCache<string, StoredResponse>({
    maxSize: maxBytes,
    sizeCalculation: (value, key) => recordSize(key, value),
    ttlResolution,
    ...(perf ? { perf } : {}),
  });

  // Counters: key "s<tuple>" → next n of both stacks, packed. Claims: key "c<record key>" → 1.
  const meta = new LRUCache<string, number>({
    maxSize: maxMetaBytes,
    sizeCalculation: (_v, key) => key.length + META_OVERHEAD,
    ttlResolution,
    ...(perf ? { perf } : {}),
  });

  const waiters = new Waiters();
  const internPairs = createPairPool();
  let closed = false;
  const purgeEvery = options.purgeIntervalMs ?? 5000;
  const purgeTimer =
    purgeEvery > 0
      ? setInterval(() => {
          records.purgeStale();
          meta.purgeStale();
        }, purgeEvery).unref()
      : undefined;

  function ttlOf(ttlMs: number): number {
    const t = Math.ceil(ttlMs);
    if (!(t > 0)) throw new TypeError(`ttlMs must be a positive number (got ${ttlMs})`);
    return t;
  }

  const store: CacheStore = {
    kind: "memory",

    sequence(stack: Stack, tuple: string, ttlMs: number): Promise<number> {
      if (closed) return Promise.reject(closedError());
      // One entry per tuple holds both stacks' counters (test + mirror · 2^26): the mirror call
      // of an exchange updates the entry its test call created instead of adding a key of its
      // own (half the memory, and no new key on the mirror hit path).
      const k = "s" + tuple;
      const v = meta.get(k);
      const test = v === undefined ? 0 : v % COUNT_SPAN;
      const mirror = v === undefined ? 0 : Math.floor(v / COUNT_SPAN);
      const n = stack === "test" ? test : mirror;
      if (n + 1 >= COUNT_SPAN) return Promise.reject(new RangeError(`more than ${COUNT_SPAN - 1} ${stack} calls of one tuple within its TTL`));
      const next = stack === "test" ? v === undefined ? 1 : v + 1 : (v ?? 0) + COUNT_SPAN;
      // set() refreshes the TTL, like INCR + PEXPIRE on Redis. A new key is flattened first (an
      // existing entry keeps the key it was created with).
      meta.set(v === undefined ? flatten(k) : k, next, { ttl: ttlOf(ttlMs) });
      return Promise.resolve(n);
    },

    claim(key: string, ttlMs: number): Promise<boolean> {
      if (closed) return Promise.reject(closedError());
      const k = "c" + key;
      // Held, or already recorded (put drops the claim entry: the record answers instead).
      if (meta.has(k) || records.has(key)) return Promise.resolve(false);
      meta.set(flatten(k), 1, { ttl: ttlOf(ttlMs) });
      return Promise.resolve(true);
    },

    release(key: string): Promise<void> {
      if (closed) return Promise.reject(closedError());
      meta.delete("c" + key);
      return Promise.resolve();
    },

    put(key: string, value: StoredResponse, ttlMs: number): Promise<void> {
      if (closed) return Promise.reject(closedError());
      const ttl = ttlOf(ttlMs);
      // A record of our own: flat key, pooled header pairs, a compact body (see above).
      const v: StoredResponse = { status: value.status, headers: internPairs(value.headers), body: compactBody(value.body) };
      key = flatten(key);
      // A record larger than the whole budget is not kept (lru-cache refuses it and drops any
      // older record under that key), but its waiters still get it below.
      records.set(key, v, { ttl });
      meta.delete("c" + key);
      waiters.wake(key, v);
      return Promise.resolve();
    },

    get(key: string): Promise<StoredResponse | undefined> {
      if (closed) return Promise.reject(closedError());
      const v = records.get(key);
      return v === undefined ? UNDEFINED : Promise.resolve(v);
    },

    wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredResponse | undefined> {
      if (closed) return UNDEFINED;
      const v = records.get(key);
      if (v !== undefined) return Promise.resolve(v);
      if (!(timeoutMs > 0) || signal?.aborted) return UNDEFINED;
      return waiters.wait(key, timeoutMs, signal);
    },

    ping(): Promise<void> {
      return closed ? Promise.reject(closedError()) : Promise.resolve();
    },

    /** Exact: stale records are purged first (O(records); meant for metric scrapes, not per call). */
    stats(): StoreStats {
      records.purgeStale();
      return { entries: records.size, bytes: records.calculatedSize };
    },

    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      if (purgeTimer) clearInterval(purgeTimer);
      waiters.closeAll();
      records.clear();
      meta.clear();
      return Promise.resolve();
    },
  };

  // Introspection for the memory-only tests and the bench (not part of CacheStore).
  Object.defineProperty(store, "debug", {
    enumerable: false,
    value: () => ({ waiters: waiters.size, metaEntries: meta.size, metaBytes: meta.calculatedSize, maxMetaBytes }),
  });
  return store;
}

/** Test/bench introspection of a memory store. */
export function memoryStoreDebug(store: CacheStore): { waiters: number; metaEntries: number; metaBytes: number; maxMetaBytes: number } {
  const fn = (store as unknown as { debug?: () => ReturnType<typeof memoryStoreDebug> }).debug;
  if (!fn) throw new TypeError("not a memory store");
  return fn();
}
