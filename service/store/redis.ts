// Redis CacheStore (ioredis): records, sequence counters, claims and wake-ups shared by every
// replica that points at the same Redis and key prefix.
//
// Keys (prefix default "mesh-mirror:"):
//   <p>r:<key>             record: one binary value (codec.ts), SET … PX ttl
//   <p>s:<stack>:<tuple>   sequence counter: INCR + PEXPIRE in one Lua script (atomic)
//                          (the record key of a call is <p>r:<tuple>\n<n>: key.ts callKey)
//   <p>c:<key>             claim: SET … 1 NX PX ttl; release = DEL
//                          (a test call's first step, `begin`, is one Lua script: INCR + PEXPIRE
//                          the counter, then SET NX the claim of the key built from n)
//   channel <p>put         PUBLISH <key> after each put, so waiters on any replica re-read it
//
// Waits: GET; if absent, register a local waiter (map keyed by record key), make sure the one
// shared subscriber connection is subscribed, then GET again (a put between the first GET and the
// subscription is not lost). A message for a waited key triggers one GET for all its local
// waiters. After any reconnect (of either connection) every waited key is re-read, so a put made
// while a connection was down is not lost either; waits that see nothing before their timeout
// resolve undefined.
//
// Lookup (a mirror call's first step) is one Lua script and one round trip: INCR + PEXPIRE the
// sequence counter, then GET <p>r:<tuple>\n<n>, the record key built inside the script from n.
// The lookups of one event-loop turn go out as ONE script call (up to LOOKUP_BATCH of them), so
// under load ioredis builds, times and parses one command per turn instead of one per mirror
// call (that per-command work was most of the Redis hit path's CPU).
// That record key is not declared in KEYS (it is not known before the INCR): fine on one Redis
// (with or without Sentinel/replicas), not on Redis Cluster, where a script may only touch
// declared keys of one slot. Cluster is not supported by this store (it uses `new Redis(url)`).
//
// Failure: the offline queue is off and no command is retried, so while Redis is unreachable
// every method rejects at once with StoreUnavailableError (`wait` too, when it cannot do its
// first GET); commands on a live but stalled connection fail after `commandTimeoutMs`. ioredis
// reconnects on its own (backoff capped at 1 s); the store works again without being recreated.
// Calls made before the very first connection is up wait for it (at most `connectTimeoutMs`).
import { Redis, type RedisOptions } from "ioredis";
import { callKey } from "../key.ts";
import { decodeRecord, encodeRecord } from "./codec.ts";
import { StoreUnavailableError, type Begin, type CacheStore, type Lookup, type Stack, type StoredResponse, type StoreStats } from "./types.ts";
import { Waiters } from "./waiters.ts";

export interface RedisStoreOptions {
  /** redis://[user:pass@]host:port[/db] */
  url: string;
  /** Prefix of every key and of the pub/sub channel. Default "mesh-mirror:". */
  keyPrefix?: string;
  /** TCP connect timeout, and the longest a call made before the first connection waits. Default 2000. */
  connectTimeoutMs?: number;
  /** A command with no answer after this long fails with StoreUnavailableError. Default 2000. */
  commandTimeoutMs?: number;
  /** `ping()` timeout. Default 500. */
  pingTimeoutMs?: number;
  /** Extra ioredis options (tls, username, …); the failure-policy options above win. */
  redis?: RedisOptions;
}

const SEQUENCE_LUA = `
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n - 1
`;

// KEYS[i] sequence keys; ARGV[1] ttl ms, ARGV[i + 1] the record key of KEYS[i] without n
// (<p>r:<tuple>\n). Returns {n1, record1 or nil, n2, record2 or nil, …}. (GET of a missing key
// is `false` in Lua, which keeps the table without holes and replies nil.) `%d`, not `..`: Lua's
// number-to-string would write 1e+14.
const LOOKUP_LUA = `
local out = {}
for i = 1, #KEYS do
  local n = redis.call('INCR', KEYS[i]) - 1
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
  out[2 * i - 1] = n
  out[2 * i] = redis.call('GET', ARGV[i + 1] .. string.format('%d', n))
end
return out
`;
// KEYS[1] sequence key; ARGV[1] ttl ms, ARGV[2] claim ttl ms, ARGV[3] the claim key without n
// (<p>c:<tuple>\n). Returns {n, 1 if claimed else 0}. (SET … NX is false in Lua when not set.)
const BEGIN_LUA = `
local n = redis.call('INCR', KEYS[1]) - 1
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local won = redis.call('SET', ARGV[3] .. string.format('%d', n), '1', 'PX', ARGV[2], 'NX')
return {n, won and 1 or 0}
`;

/** Most lookups sent in one script call. */
export const LOOKUP_BATCH = 128;

type SeqClient = Redis & {
  mmSequence(key: string, ttl: number): Promise<number>;
  mmBegin(key: string, ttl: number, claimTtl: number, claimPrefix: string): Promise<[number, number]>;
  mmLookupBuffer(numKeys: number, ...args: Array<string | number>): Promise<Array<number | Buffer | null>>;
};

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`redis store unavailable: ${msg}`, { cause: err });
}

function ttlOf(ttlMs: number): number {
  const t = Math.ceil(ttlMs);
  if (!(t > 0)) throw new TypeError(`ttlMs must be a positive number (got ${ttlMs})`);
  return t;
}

const UNDEFINED: Promise<undefined> = Promise.resolve(undefined);

export function createRedisStore(options: RedisStoreOptions): CacheStore {
  const prefix = options.keyPrefix ?? "mesh-mirror:";
  const connectTimeout = options.connectTimeoutMs ?? 2000;
  const commandTimeout = options.commandTimeoutMs ?? 2000;
  const pingTimeout = options.pingTimeoutMs ?? 500;
  const channel = prefix + "put";
  const recKey = (key: string) => prefix + "r:" + key;
  const seqKey = (stack: Stack, tuple: string) => prefix + "s:" + stack + ":" + tuple;
  // Keys built inside a script get no ioredis `keyPrefix` (options.redis): add it ourselves.
  const scriptRecPrefix = (options.redis?.keyPrefix ?? "") + prefix + "r:";
  const scriptClaimPrefix = (options.redis?.keyPrefix ?? "") + prefix + "c:";

  const connOptions: RedisOptions = {
    ...options.redis,
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false, // we resubscribe ourselves, then re-read waited keys
    enableReadyCheck: true,
    connectTimeout,
    commandTimeout,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
  };

  let closed = false;
  const waiters = new Waiters();

  // ---- main connection --------------------------------------------------------------------
  // Auto-pipelining: commands issued in one event-loop turn (many concurrent calls) go out in one
  // write, which is most of the Redis hit path's throughput under load.
  // (A lookup batch is already one command per turn: it is sent at once, not deferred again.)
  const client = new Redis(options.url, {
    ...connOptions,
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: ["mmLookup"],
  }) as SeqClient;
  client.defineCommand("mmSequence", { numberOfKeys: 1, lua: SEQUENCE_LUA });
  client.defineCommand("mmBegin", { numberOfKeys: 1, lua: BEGIN_LUA });
  client.defineCommand("mmLookup", { lua: LOOKUP_LUA }); // numKeys given per call
  let lastError: unknown;
  // Until the first connection attempt has either succeeded or failed, calls wait for it.
  let starting = true;
  let startWaiters: Array<() => void> = [];
  const endStarting = () => {
    if (!starting) return;
    starting = false;
    const list = startWaiters;
    startWaiters = [];
    for (const f of list) f();
  };
  client.on("error", (err) => {
    lastError = err; // handled: ioredis would otherwise print "Unhandled error event"
  });
  client.on("close", endStarting);
  client.on("ready", () => {
    const wasStarting = starting;
    endStarting();
    if (!wasStarting) recheckAll(); // puts made while we were away
  });

  function whenReady(): Promise<void> {
    if (closed) return Promise.reject(new StoreUnavailableError("redis store is closed"));
    if (client.status === "ready") return Promise.resolve();
    if (!starting) {
      return Promise.reject(
        new StoreUnavailableError(`redis store unavailable (connection ${client.status})`, { cause: lastError }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        startWaiters = startWaiters.filter((f) => f !== check);
        reject(new StoreUnavailableError(`redis store unavailable: no connection after ${connectTimeout} ms`, { cause: lastError }));
      }, connectTimeout);
      const check = () => {
        clearTimeout(timer);
        if (client.status === "ready") resolve();
        else reject(new StoreUnavailableError(`redis store unavailable (connection ${client.status})`, { cause: lastError }));
      };
      startWaiters.push(check);
    });
  }

  /** Runs a command on the main connection, failing fast when it is not ready. */
  function run<T>(fn: () => Promise<T>): Promise<T> {
    if (client.status === "ready" && !closed) return fn().catch((err) => Promise.reject(unavailable(err)));
    return whenReady().then(fn).catch((err) => Promise.reject(unavailable(err)));
  }

  // ---- subscriber connection (created on the first wait that needs it) ---------------------
  let sub: Redis | undefined;
  let subscribed = false;

  /** Connects and subscribes the shared subscriber once; every (re)subscription re-reads every
   * waited key, so a new waiter needs no callback of its own (none piles up during an outage). */
  function ensureSubscribed(): void {
    if (!sub) {
      const s = new Redis(options.url, connOptions);
      sub = s;
      s.on("error", (err) => {
        lastError = err;
      });
      s.on("close", () => {
        subscribed = false;
      });
      s.on("ready", () => {
        s.subscribe(channel).then(
          () => {
            subscribed = true;
            recheckAll();
          },
          () => {
            /* connection dropped again; the next "ready" retries */
          },
        );
      });
      s.on("message", (_ch: string, key: string) => {
        if (waiters.has(key)) recheck(key);
      });
    }
  }

  // ---- waiters -----------------------------------------------------------------------------
  // One GET per waited key at a time; a wake-up that arrives while one is in flight re-runs it
  // afterwards (that GET may have been answered before the put).
  const rechecking = new Map<string, boolean>();
  function recheck(key: string): void {
    if (closed || !waiters.has(key)) return;
    if (rechecking.has(key)) {
      rechecking.set(key, true);
      return;
    }
    rechecking.set(key, false);
    const done = () => {
      const again = rechecking.get(key);
      rechecking.delete(key);
      if (again) recheck(key);
    };
    if (client.status !== "ready") {
      // Re-read when the main connection is back ("ready" → recheckAll).
      rechecking.delete(key);
      return;
    }
    client.getBuffer(recKey(key)).then(
      (buf) => {
        if (buf) {
          try {
            waiters.wake(key, decodeRecord(buf));
          } catch {
            /* not ours / corrupt: leave the waiters to time out */
          }
        }
        done();
      },
      () => done(),
    );
  }

  function recheckAll(): void {
    for (const key of waiters.keys()) recheck(key);
  }

  // ---- stats: what this replica wrote, bucketed by expiry second ----------------------------
  const expiries = new Map<number, { entries: number; bytes: number }>();
  let statEntries = 0;
  let statBytes = 0;
  function countPut(bytes: number, ttl: number): void {
    const sec = Math.ceil((Date.now() + ttl) / 1000);
    let b = expiries.get(sec);
    if (!b) {
      b = { entries: 0, bytes: 0 };
      expiries.set(sec, b);
    }
    b.entries++;
    b.bytes += bytes;
    statEntries++;
    statBytes += bytes;
  }

  // ---- lookup batches -----------------------------------------------------------------------
  interface PendingLookup {
    tuple: string;
    seqKey: string;
    resolve(l: Lookup): void;
    reject(err: unknown): void;
  }
  /** Lookups of this turn, by TTL (one TTL in practice: the service's). */
  let pendingLookups = new Map<number, PendingLookup[]>();
  let lookupFlushQueued = false;
  const flushLookups = (): void => {
    lookupFlushQueued = false;
    const groups = pendingLookups;
    pendingLookups = new Map();
    for (const [ttl, all] of groups) {
      for (let i = 0; i < all.length; i += LOOKUP_BATCH) sendLookups(ttl, all.slice(i, i + LOOKUP_BATCH));
    }
  };
  function sendLookups(ttl: number, batch: PendingLookup[]): void {
    const args: Array<string | number> = new Array(batch.length * 2 + 1);
    for (let i = 0; i < batch.length; i++) {
      args[i] = batch[i].seqKey;
      args[batch.length + 1 + i] = scriptRecPrefix + batch[i].tuple + "\n";
    }
    args[batch.length] = ttl;
    run(() => client.mmLookupBuffer(batch.length, ...args)).then(
      (out) => {
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i];
          const buf = out[2 * i + 1] as Buffer | null;
          try {
            p.resolve({ key: callKey(p.tuple, Number(out[2 * i])), record: buf ? decodeRecord(buf) : undefined });
          } catch (err) {
            p.reject(err); // an undecodable record: this call fails, not the batch
          }
        }
      },
      (err) => {
        for (const p of batch) p.reject(err);
      },
    );
  }

  const store: CacheStore = {
    kind: "redis",

    sequence(stack: Stack, tuple: string, ttlMs: number): Promise<number> {
      const ttl = ttlOf(ttlMs);
      return run(() => client.mmSequence(seqKey(stack, tuple), ttl)).then(Number);
    },

    lookup(stack: Stack, tuple: string, ttlMs: number): Promise<Lookup> {
      let ttl: number;
      try {
        ttl = ttlOf(ttlMs);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<Lookup>((resolve, reject) => {
        let group = pendingLookups.get(ttl);
        if (group === undefined) pendingLookups.set(ttl, (group = []));
        group.push({ tuple, seqKey: seqKey(stack, tuple), resolve, reject });
        if (!lookupFlushQueued) {
          lookupFlushQueued = true;
          setImmediate(flushLookups);
        }
      });
    },

    begin(tuple: string, ttlMs: number, claimTtlMs: number): Promise<Begin> {
      let ttl: number;
      let claimTtl: number;
      try {
        ttl = ttlOf(ttlMs);
        claimTtl = ttlOf(claimTtlMs);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(() => client.mmBegin(seqKey("test", tuple), ttl, claimTtl, scriptClaimPrefix + tuple + "\n")).then(([n, won]) => ({
        key: callKey(tuple, Number(n)),
        won: Number(won) === 1,
      }));
    },

    claim(key: string, ttlMs: number): Promise<boolean> {
      const ttl = ttlOf(ttlMs);
      return run(() => client.set(prefix + "c:" + key, "1", "PX", ttl, "NX")).then((r) => r === "OK");
    },

    release(key: string): Promise<void> {
      return run(() => client.del(prefix + "c:" + key)).then(() => undefined);
    },

    put(key: string, value: StoredResponse, ttlMs: number): Promise<void> {
      const ttl = ttlOf(ttlMs);
      const buf = encodeRecord(value);
      const k = recKey(key);
      return run(() => client.pipeline().set(k, buf, "PX", ttl).publish(channel, key).exec()).then((results) => {
        for (const [err] of results ?? []) if (err) throw unavailable(err);
        countPut(buf.length + k.length, ttl);
        waiters.wake(key, value); // local waiters: no need to read it back
      });
    },

    get(key: string): Promise<StoredResponse | undefined> {
      return run(() => client.getBuffer(recKey(key))).then((buf) => (buf ? decodeRecord(buf) : undefined));
    },

    async wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredResponse | undefined> {
      if (closed) return undefined;
      const first = await store.get(key);
      if (first !== undefined) return first;
      if (!(timeoutMs > 0) || signal?.aborted || closed) return UNDEFINED;
      const p = waiters.wait(key, timeoutMs, signal);
      // Subscribed → read again: a put that landed between the first GET and the subscription
      // is seen here; one after it arrives as a message.
      if (subscribed) recheck(key);
      else ensureSubscribed();
      return p;
    },

    ping(): Promise<void> {
      if (closed) return Promise.reject(new StoreUnavailableError("redis store is closed"));
      if (client.status !== "ready" && !starting) {
        return Promise.reject(new StoreUnavailableError(`redis store unavailable (connection ${client.status})`, { cause: lastError }));
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreUnavailableError(`redis did not answer PING within ${pingTimeout} ms`)), pingTimeout);
      });
      return Promise.race([run(() => client.ping()), timeout])
        .then(() => undefined)
        .finally(() => clearTimeout(timer));
    },

    /**
     * Records THIS replica put that have not reached their TTL yet (entries, and bytes as
     * encoded value + key), from local counters bucketed by expiry second — no Redis round trip.
     * Records written by other replicas are not counted; a record overwritten or evicted by
     * Redis (maxmemory) still counts until its TTL.
     */
    stats(): StoreStats {
      const nowSec = Date.now() / 1000;
      for (const [sec, b] of expiries) {
        if (sec <= nowSec) {
          statEntries -= b.entries;
          statBytes -= b.bytes;
          expiries.delete(sec);
        }
      }
      return { entries: statEntries, bytes: statBytes };
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      waiters.closeAll();
      for (const f of startWaiters) f();
      startWaiters = [];
      await Promise.all([quit(client), sub ? quit(sub) : undefined]);
    },
  };
  return store;
}

async function quit(conn: Redis): Promise<void> {
  if (conn.status === "ready") {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      conn.quit().catch(() => undefined),
      new Promise<void>((r) => {
        timer = setTimeout(r, 500);
      }),
    ]);
    clearTimeout(timer);
  }
  conn.disconnect();
}
