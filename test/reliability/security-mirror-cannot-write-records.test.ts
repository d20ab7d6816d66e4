// A mirror trying to write a record: mirror calls of every method, with bodies and with headers
// that look like a cache answer or a test call (`x-mirror-cache: pass`, a second stack header,
// content of its own), for keys that have no record yet and for keys that have one. Checked on the
// store itself before and after: with the memory store (entries, and each existing record's
// bytes), and with Redis (every key under the prefix: no record `r:` or claim `c:` key created,
// existing record values byte-identical; only the mirror's own `s:mirror:` counters may appear).
// Extends test/service/mirror-never-reaches-upstream (which spies on the store's methods).
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { callKey, callTuple } from "../../service/key.ts";
import { createRedisStore } from "../../service/store/redis.ts";
import { send, startService, type Service } from "../service/support/harness.ts";
import { MARKER, startFaultUpstream, type FaultUpstream } from "./support.ts";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"];

type Attempt = { method: string; path: string; rid: string; host: string; headers: Record<string, string>; body?: string };
function attempts(rid: string, host: string): Attempt[] {
  return METHODS.flatMap((method): Attempt[] => [
    { method, path: "/ok", rid, host, headers: { [MARKER]: "mirror", "x-mirror-cache": "pass" }, body: `{"forged":"${method}"}` },
    { method, path: "/fresh", rid, host, headers: { [MARKER]: "mirror", "content-type": "application/json" }, body: "x".repeat(2048) },
    { method, path: "/ok", rid: `${rid}-other`, host, headers: { [MARKER]: "mirror", "x-mirror-stack-2": "test" } },
  ]);
}

describe("a mirror cannot write or alter a record", () => {
  let up: FaultUpstream;
  beforeAll(async () => {
    up = await startFaultUpstream();
  });
  afterAll(async () => {
    await up?.close();
  });

  describe("memory store", () => {
    let svc: Service;
    beforeAll(async () => {
      svc = await startService({ MIRROR_CACHE_WAIT_MS: "0" });
    });
    afterAll(() => svc?.close());

    it("entries and existing records are unchanged by any mirror call", async () => {
      const rid = `rel-nowrite-${Date.now()}`;
      const t = await send(svc.port, { host: up.authority, stack: "test", rid, path: "/ok" });
      expect(t.headers["x-mirror-cache"]).toBe("pass");
      const key = callKey(callTuple(rid, "GET", up.authority, "/ok"), 0);
      const before = await svc.store.get(key);
      const entries = svc.store.stats().entries;
      const seen = up.seen.length;

      for (const a of attempts(rid, up.authority)) {
        const r = await send(svc.port, { method: a.method, path: a.path, host: a.host, stack: "mirror", rid: a.rid, headers: a.headers, body: a.body });
        expect([200, 504]).toContain(r.status);
      }
      expect(svc.store.stats().entries).toBe(entries);
      const after = await svc.store.get(key);
      expect(after!.status).toBe(before!.status);
      expect(after!.headers).toEqual(before!.headers);
      expect(Buffer.compare(after!.body, before!.body)).toBe(0);
      expect(up.seen.length).toBe(seen);
      // the test stack's next call on /fresh is forwarded (no record a mirror could have planted)
      const fresh = await send(svc.port, { method: "POST", path: "/fresh", host: up.authority, stack: "test", rid, body: "real" });
      expect(fresh.headers["x-mirror-cache"]).toBe("pass");
      expect(up.markerCount("mirror")).toBe(0);
    });
  });

  describe("redis store", () => {
    let svc: Service;
    let redis: Redis;
    const prefix = `rel-nowrite-${process.pid}-${Date.now()}:`;
    beforeAll(async () => {
      const url = inject("redisUrl");
      redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
      svc = await startService({ MIRROR_CACHE_WAIT_MS: "0" }, { store: createRedisStore({ url, keyPrefix: prefix }) });
    });
    afterAll(async () => {
      await svc?.close();
      redis?.disconnect();
    });
    async function snapshot(): Promise<Map<string, Buffer>> {
      const keys: string[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== "0");
      const out = new Map<string, Buffer>();
      for (const k of keys) {
        const type = await redis.type(k);
        out.set(k, type === "string" ? ((await redis.getBuffer(k)) ?? Buffer.alloc(0)) : Buffer.from(type));
      }
      return out;
    }

    it("no record or claim key is created, existing records stay byte-identical; only mirror counters appear", async () => {
      const rid = `rel-nowrite-r-${Date.now()}`;
      const t = await send(svc.port, { host: up.authority, stack: "test", rid, path: "/ok" });
      expect(t.headers["x-mirror-cache"]).toBe("pass");
      const before = await snapshot();
      expect([...before.keys()].some((k) => k.startsWith(`${prefix}r:`))).toBe(true);
      const seen = up.seen.length;

      for (const a of attempts(rid, up.authority)) {
        const r = await send(svc.port, { method: a.method, path: a.path, host: a.host, stack: "mirror", rid: a.rid, headers: a.headers, body: a.body });
        expect([200, 504]).toContain(r.status);
      }
      const after = await snapshot();
      for (const [k, v] of before) {
        if (k.startsWith(`${prefix}s:mirror:`)) continue; // the mirror's own call counters
        expect(after.get(k), k).toBeDefined();
        expect(Buffer.compare(after.get(k)!, v), k).toBe(0);
      }
      const added = [...after.keys()].filter((k) => !before.has(k));
      expect(added.length).toBeGreaterThan(0); // the mirror's sequence counters
      for (const k of added) expect(k.startsWith(`${prefix}s:mirror:`), k).toBe(true);
      expect(up.seen.length).toBe(seen);
      expect(up.markerCount("mirror")).toBe(0);
    });
  });
});
