// In-memory CacheStore: one process, records in an LRU with a byte budget and a TTL per record.
//
// Records:   an OffHeapLru (offheap-lru.ts) whose byte budget is `maxBytes`, each record
//            counted as body + Σ(header name + value + HEADER_OVERHEAD) + key + RECORD_OVERHEAD
//            (the overheads are measured by `npx tsx bench/service/run.ts --only memory`). A
//            record is a slot: its key's characters and its index entry live in typed arrays and
//            slabs, its status and body location in arrays of this module indexed by slot, so a
//            record costs the JS heap one pointer (its header list, shared between records with
//            the same headers) instead of several objects. Why: V8's young-generation collections
//            walk the old generation's pages, and with a million records held as objects each
//            took ~1 ms instead of ~0.2 ms, the mirror hit's p99 (README, "Garbage collection and
//            the tail").
// Metadata:  sequence counters (an OffHeapLru keyed by the tuple) and claims (an ExpiringLru keyed
//            by the record key, in flight only) share the metadata byte budget (`maxMetaBytes`,
//            default a quarter of `maxBytes`: counters get three quarters of it, claims one), so
//            a client sending endless unique tuples evicts old counters instead of growing memory
//            without limit. Claims have a map of their own because they are few and short-lived:
//            their inserts and deletes then stay in a small, cache-warm table.
// Hit path:  a tuple's counter links to the tuple's first record (n = 0, nearly every call) by
//            slot and generation, so a mirror hit costs one table lookup (the counter it must
//            update anyway), not two: the records are probed with the full key only for n > 0.
//            The link is made by `put` from the claim `begin` took (which knows its counter), and
//            a record that left (evicted, replaced, expired) no longer matches its generation.
// Expiry:    reads never see an expired entry; a background sweep drops expired entries in
//            batches of PURGE_BATCH, yielding to I/O between batches, so no pause grows with the
//            number of records.
// Waiters:   waiters.ts (shared with the redis store), per record key; `put` wakes them with the
//            value it stores (even when the value is too large to be kept), a timer or an abort
//            signal resolves one with `undefined`, `close` resolves them all with `undefined`.
//
// `put` keeps its own copy (same status, equal headers, same body bytes; header lists and header
// pair arrays shared between records), and `get`/`lookup`/`wait` return a view of it, without
// copying the body: callers must treat a StoredResponse as immutable. Smaller bodies are copied
// into shared slabs (SLAB_BYTES, slab-arena.ts). Bodies of POOL_MIN_BYTES and more are copied into
// reused buffers (body-pool.ts), or adopted as they are when `bodyBuffer` handed them out (the
// forwarder gathers a streamed answer into one): each view of such a record is leased, and its
// `release()` (called by sendRecord once the answer is written, or once it has copied the body
// into a staging buffer, service/staging.ts) lets the buffer be reused after the record has left
// the store.
import { callKey } from "../key.ts";
import { BodyPool, POOL_MIN_BYTES } from "./body-pool.ts";
import { ExpiringLru, LruEntry } from "./expiring-lru.ts";
import { grownArray, OffHeapLru } from "./offheap-lru.ts";
import { SlabArena } from "./slab-arena.ts";
import { StoreUnavailableError, type Begin, type CacheStore, type Lookup, type Stack, type StoredResponse, type StoreStats } from "./types.ts";
import { Waiters } from "./waiters.ts";

/** Bytes counted per record on top of its body, headers and key: its slot in the typed arrays
 * (~94 B, up to twice that just after they doubled) and the body's alignment. Measured on Node 20
 * x64 (bench/service/run.ts `memory` section, four headers, 100k records): 14 B beyond the body,
 * key and header characters when header pairs repeat across records, 203 B when every record has
 * header values of its own (JS strings and pair arrays); with HEADER_OVERHEAD per pair, the
 * budget counts at least what the worst case uses. */
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

/** Small bodies (under POOL_MIN_BYTES) are copied into shared slabs of this size (see
 * slab-arena.ts): one ArrayBuffer for the hundred or so records written after one another, where
 * a body of its own per record (a view of the socket read it arrived in, as it once was) made V8
 * sweep hundreds of thousands of ArrayBuffers on the main thread around every full collection. */
export const SLAB_BYTES = 128 * 1024;

function positiveInt(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new TypeError(`${name} must be a positive number (got ${v})`);
  return Math.floor(v);
}

// The service builds keys by concatenation (`tuple + "\n" + n`), which V8 keeps as a rope of
// ConsStrings pointing at every piece (request id, authority, path…): ~700 B for a typical key
// when kept as is. Reading a character flattens the rope into one sequential string, so a string
// the store keeps (a claim's key, a header) retains only that. (The result goes to a module variable so it is not optimized away.)
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

/** A record handed to a reader: its status, headers and body (a view of its slab). */
class RecordView implements StoredResponse {
  constructor(
    readonly status: number,
    readonly headers: Array<[string, string]>,
    readonly body: Buffer,
  ) {}
}

/** A record whose body is a BodyPool buffer, leased to its reader until `release()`. */
class LeasedView extends RecordView {
  constructor(
    status: number,
    headers: Array<[string, string]>,
    body: Buffer,
    private readonly leases: Leases,
  ) {
    super(status, headers, body);
  }
  release(): void {
    this.leases.drop(this.body);
  }
}

/** Readers of pooled body buffers: a buffer goes back to the pool once its record has left the
 * store (`leave`) and every reader it was handed to has released it. Only buffers being read are
 * in these maps (as many as answers in flight), weakly: a reader that never releases (its
 * connection was cut) leaves the buffer to the garbage collector once the store has let it go. */
class Leases {
  private readonly readers = new WeakMap<Buffer, number>();
  private readonly left = new WeakSet<Buffer>();
  constructor(private readonly pool: BodyPool) {}
  add(buf: Buffer, n: number): void {
    this.readers.set(buf, (this.readers.get(buf) ?? 0) + n);
  }
  drop(buf: Buffer): void {
    const n = (this.readers.get(buf) ?? 1) - 1;
    if (n > 0) return void this.readers.set(buf, n);
    this.readers.delete(buf);
    if (this.left.delete(buf)) this.pool.give(buf);
  }
  /** The store no longer holds `buf`. */
  leave(buf: Buffer): void {
    if (this.readers.has(buf)) this.left.add(buf);
    else this.pool.give(buf);
  }
}

/** A claim on a record key; `counter`/`counterGen`: the tuple's counter slot when the key is its
 * first (n = 0), so that `put` can link the record to it (-1 otherwise). */
class ClaimEntry extends LruEntry {
  constructor(
    key: string,
    readonly counter: number,
    readonly counterGen: number,
  ) {
    super(key, key.length + META_OVERHEAD);
  }
}

export function createMemoryStore(options: MemoryStoreOptions): CacheStore {
  const maxBytes = positiveInt("maxBytes", options.maxBytes);
  const maxMetaBytes = positiveInt("maxMetaBytes", options.maxMetaBytes ?? Math.max(1 << 20, Math.floor(maxBytes / 4)));
  const now = options.now ?? (() => performance.now());
  // Bodies of POOL_MIN_BYTES and more live in reused buffers (body-pool.ts); idle ones are
  // bounded by an eighth of the budget, at most 64 MiB.
  const pool = new BodyPool(Math.min(64 * 1024 * 1024, Math.floor(maxBytes / 8)));
  const leases = new Leases(pool);
  const bodies = new SlabArena(SLAB_BYTES, 8);

  // Records: record key → slot; the payload of slot r is status[r], heads[r] and either
  // bodies[bodySlab[r]] at bodyOff[r] (bodyLen[r] bytes) or the pooled buffer bigs[r].
  let status = new Uint16Array(0);
  let bodySlab = new Int32Array(0);
  let bodyOff = new Int32Array(0);
  let bodyLen = new Float64Array(0);
  let heads: Array<Array<[string, string]> | undefined> = [];
  let bigs: Array<Buffer | undefined> = [];
  const records = new OffHeapLru(
    maxBytes,
    now,
    (r) => {
      // A record leaving the store frees its body's range, or its pooled buffer once read.
      if (bodySlab[r] >= 0) bodies.free(bodySlab[r]);
      const big = bigs[r];
      if (big !== undefined) {
        bigs[r] = undefined;
        leases.leave(big);
      }
      heads[r] = undefined;
    },
    (cap) => {
      status = grownArray(status, cap);
      bodySlab = grownArray(bodySlab, cap);
      bodyOff = grownArray(bodyOff, cap);
      bodyLen = grownArray(bodyLen, cap);
    },
  );
  // Counters: tuple → next n of both stacks, packed (cval), and the tuple's first record (n = 0)
  // while both are held: slot cFirst[c] while its generation is still cFirstGen[c].
  let cval = new Float64Array(0);
  let cFirst = new Int32Array(0);
  let cFirstGen = new Int32Array(0);
  const claimBudget = Math.floor(maxMetaBytes / 4);
  const counters = new OffHeapLru(maxMetaBytes - claimBudget, now, undefined, (cap) => {
    cval = grownArray(cval, cap);
    cFirst = grownArray(cFirst, cap);
    cFirstGen = grownArray(cFirstGen, cap);
  });
  // Claims: record key → the claim (few, in flight only: JS objects are fine here).
  const claims = new ExpiringLru<ClaimEntry>(claimBudget, now);

  const waiters = new Waiters();
  // Pool buffers handed out by `bodyBuffer` and not put yet: `put` adopts these without a copy.
  const handedOut = new WeakSet<ArrayBuffer>();
  const internHeaders = createHeaderPool();
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

  /** The counter slot `count` used (-1: the tuple's counter could not be kept, see `count`). */
  let counted = -1;

  /** Moves the tuple's counter of `stack` on and returns its packed value: `n` of this call is
   * `countOf(stack, value) - 1` (see `sequence`); the counter's slot is left in `counted`. */
  function count(stack: Stack, tuple: string, ttlMs: number): number {
    // One entry per tuple holds both stacks' counters (test + mirror · 2^26): the mirror call
    // of an exchange updates the entry its test call created instead of adding a key of its
    // own (half the memory, and no new key on the mirror hit path).
    let c = counters.find(tuple);
    const v = c < 0 ? 0 : cval[c];
    if (countOf(stack, v) + 1 >= COUNT_SPAN) throw new RangeError(`more than ${COUNT_SPAN - 1} ${stack} calls of one tuple within its TTL`);
    const next = stack === "test" ? v + 1 : v + COUNT_SPAN;
    const ttl = ttlOf(ttlMs); // a new TTL from now, like INCR + PEXPIRE on Redis
    if (c < 0) {
      // absent: `find` just missed (and dropped an expired one). A tuple longer than the whole
      // metadata budget is counted from 0 each time, like any counter the budget evicted.
      c = counters.insert(tuple, tuple.length + META_OVERHEAD, ttl);
      if (c >= 0) cFirst[c] = -1;
    } else counters.refresh(c, ttl);
    if (c >= 0) cval[c] = next;
    counted = c;
    return next;
  }

  /** Claims `key` unless it is held or already recorded (put drops the claim entry: the record
   * answers instead). A claim the budget cannot hold is still won (the call is forwarded; only
   * single-flight for that key is lost). */
  function tryClaim(key: string, ttl: number, counter: number): boolean {
    if (claims.has(key) || records.has(key)) return false;
    claims.set(new ClaimEntry(key, counter, counter < 0 ? 0 : counters.gen(counter)), ttl);
    return true;
  }

  /** A record for `readers` readers: its body is the pooled buffer `big` (then leased `readers`
   * times) or `len` bytes at `at` in slab `slab` (-1: empty). */
  function viewOf(code: number, headers: Array<[string, string]>, big: Buffer | undefined, slab: number, at: number, len: number, readers: number): StoredResponse {
    if (big !== undefined) {
      leases.add(big, readers);
      return new LeasedView(code, headers, big, leases);
    }
    return new RecordView(code, headers, slab < 0 ? EMPTY_BODY : bodies.buffer(slab).subarray(at, at + len));
  }

  /** The record in slot `r` for a reader, leased `readers` times when its body is pooled. */
  function view(r: number, readers: number): StoredResponse {
    return viewOf(status[r], heads[r]!, bigs[r], bodySlab[r], bodyOff[r], bodyLen[r], readers);
  }

  const store: CacheStore = {
    kind: "memory",

    sequence(stack: Stack, tuple: string, ttlMs: number): Promise<number> {
      if (closed) return Promise.reject(closedError());
      try {
        return Promise.resolve(countOf(stack, count(stack, tuple, ttlMs)) - 1);
      } catch (err) {
        return Promise.reject(err);
      }
    },

    lookupNow(stack: Stack, tuple: string, ttlMs: number): Lookup {
      if (closed) throw closedError();
      const n = countOf(stack, count(stack, tuple, ttlMs)) - 1;
      const c = counted;
      // The tuple's first record through the counter's link: no second table lookup.
      if (n === 0 && c >= 0) {
        const r = cFirst[c];
        if (r >= 0 && records.touch(r, cFirstGen[c])) return { key: callKey(tuple, 0), record: view(r, 1) };
      }
      const key = callKey(tuple, n);
      const r = records.get(key);
      return { key, record: r < 0 ? undefined : view(r, 1) };
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
        const n = countOf("test", count("test", tuple, ttlMs)) - 1;
        // The claim keeps its key string while the call is in flight: flat, not a rope of pieces.
        const key = flatten(callKey(tuple, n));
        return Promise.resolve({ key, won: tryClaim(key, claimTtl, n === 0 ? counted : -1) });
      } catch (err) {
        return Promise.reject(err);
      }
    },

    claim(key: string, ttlMs: number): Promise<boolean> {
      if (closed) return Promise.reject(closedError());
      try {
        return Promise.resolve(tryClaim(flatten(key), ttlOf(ttlMs), -1));
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
      // A record of our own: pooled headers, the body copied into a slab or a pooled buffer.
      const headers = internHeaders(value.headers);
      const body = value.body;
      let big: Buffer | undefined;
      let slab = -1;
      let at = 0;
      let bodyBytes = body.length;
      if (body.length >= POOL_MIN_BYTES) {
        if (handedOut.delete(body.buffer as ArrayBuffer) && body.byteOffset === 0) big = body;
        else {
          big = pool.take(body.length);
          body.copy(big);
        }
        bodyBytes = big.buffer.byteLength; // the whole buffer counts
      } else if (body.length > 0) {
        at = bodies.alloc(body.length);
        slab = bodies.slab;
        body.copy(bodies.buffer(slab), at);
      }
      // A record larger than the whole budget is not kept (set refuses it and drops any older
      // record under that key), but its waiters still get it below.
      const r = records.set(key, sizeOf(key, headers, bodyBytes), ttl);
      if (r >= 0) {
        status[r] = value.status;
        heads[r] = headers;
        bodySlab[r] = slab;
        bodyOff[r] = at;
        bodyLen[r] = body.length;
        bigs[r] = big;
      }
      // The tuple's first record: linked from its counter, which `begin` kept in the claim (when
      // the counter is still held).
      const claim = claims.take(key);
      if (r >= 0 && claim !== undefined && claim.counter >= 0 && counters.holds(claim.counter, claim.counterGen)) {
        cFirst[claim.counter] = r;
        cFirstGen[claim.counter] = records.gen(r);
      }
      const readers = waiters.count(key);
      if (r >= 0) {
        if (readers > 0) waiters.wake(key, view(r, readers));
        return Promise.resolve();
      }
      // Not kept: the waiters' copy is the only one (leased before the store lets it go).
      if (readers > 0) waiters.wake(key, viewOf(value.status, headers, big, slab, at, body.length, readers));
      if (big !== undefined) leases.leave(big);
      if (slab >= 0) bodies.free(slab);
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
      const r = records.get(key);
      return r < 0 ? UNDEFINED : Promise.resolve(view(r, 1));
    },

    wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredResponse | undefined> {
      if (closed) return UNDEFINED;
      const r = records.get(key);
      if (r >= 0) return Promise.resolve(view(r, 1));
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
      heads = [];
      bigs = [];
      pool.clear();
      bodies.clear();
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
