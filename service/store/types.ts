// The one interface every cache store implements (memory, redis). The conformance suite in
// test/service/store/ runs the same cases against each, so the service never depends on which
// store is behind it.

export type Stack = "test" | "mirror";

/** What a test call got from its upstream (or the error the service answered with), replayed to
 * the mirror byte for byte. */
export interface StoredResponse {
  status: number;
  /** End-to-end headers only (no hop-by-hop), names lower-case, in upstream order. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** Present on records of a store that reuses body buffers (memory): the store leases each
   * record it hands out, and `release()` says nothing will read `body` again (the answer is
   * written, or its body copied for writing). Call it at most once, and never before the last
   * read; not calling it only costs the buffer's reuse. */
  release?(): void;
}

/** What `lookup` found: the mirror call's key and its record, if there is one yet. */
export interface Lookup {
  /** The record key of this call: `callKey(tuple, n)`. */
  key: string;
  record: StoredResponse | undefined;
}

/** What `begin` did: the test call's key, and whether this caller claimed it. */
export interface Begin {
  /** The record key of this call: `callKey(tuple, n)`. */
  key: string;
  /** As `claim(key)`: true when this caller forwards the call and must `put` (or `release`) it. */
  won: boolean;
}

export interface StoreStats {
  entries: number;
  /** Bytes held by records (bodies, headers and per-record overhead as the store counts it). */
  bytes: number;
}

/** Thrown by a store whose backend is unreachable; the service answers 503 STORE_UNAVAILABLE. */
export class StoreUnavailableError extends Error {
  readonly code = "STORE_UNAVAILABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

export interface CacheStore {
  readonly kind: "memory" | "redis";

  /** `n` of the call key: how many earlier calls with this tuple came from this stack (0 for the
   * first). Atomic across every replica sharing the store; the counter lives `ttlMs`. */
  sequence(stack: Stack, tuple: string, ttlMs: number): Promise<number>;

  /** `sequence(stack, tuple, ttlMs)` then `get(callKey(tuple, n))` as one operation (one round
   * trip on Redis): the mirror call's first step. */
  lookup(stack: Stack, tuple: string, ttlMs: number): Promise<Lookup>;

  /** Optional: `lookup` answered synchronously, by a store whose data lives in this process
   * (memory); throws where `lookup` rejects. A mirror hit then costs no promise and no await. */
  lookupNow?(stack: Stack, tuple: string, ttlMs: number): Lookup;

  /** `sequence("test", tuple, ttlMs)` then `claim(callKey(tuple, n), claimTtlMs)` as one
   * operation (one round trip on Redis): the test call's first step. */
  begin(tuple: string, ttlMs: number, claimTtlMs: number): Promise<Begin>;

  /** Single-flight for a test call: true when this caller is the one that forwards `key` and
   * must `put` (or `release`) it; false when another caller (here or on another replica)
   * already holds it, in which case wait for its record instead of forwarding again. */
  claim(key: string, ttlMs: number): Promise<boolean>;

  /** Optional: a buffer of `length` bytes for a record body that `put` then adopts as it is,
   * without copying it (memory store: a reused buffer, see body-pool.ts). The caller fills it,
   * puts it whole (offset 0, `length` bytes) at most once, and never reads it after `put`: the
   * store may hand it to another record once this one has left. Not putting it is fine. */
  bodyBuffer?(length: number): Buffer;

  /** Give up a claim without a record (client went away before anything was recorded). */
  release(key: string): Promise<void>;

  /** Store the record of `key` and wake every waiter, here and on other replicas. */
  put(key: string, value: StoredResponse, ttlMs: number): Promise<void>;

  get(key: string): Promise<StoredResponse | undefined>;

  /** The record of `key` as soon as it exists (immediately when it already does), or undefined
   * after `timeoutMs` or when `signal` aborts. Never writes. */
  wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredResponse | undefined>;

  /** Resolves when the backend answers; rejects with StoreUnavailableError otherwise. */
  ping(): Promise<void>;

  stats(): StoreStats;

  /** Release connections and timers; pending waits resolve undefined. */
  close(): Promise<void>;
}
