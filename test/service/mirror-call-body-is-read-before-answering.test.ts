// A mirror call's request body is never used, but it is read (and thrown away) before the answer
// goes out: answering and closing a connection that still has unread input makes the kernel send
// a reset, which destroys the answer at a client that is still sending its body.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../service/store/memory.ts";
import { StoreUnavailableError, type CacheStore } from "../../service/store/types.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

const ANSWER = Buffer.alloc(300 * 1024, "a");
const BODY = Buffer.alloc(300 * 1024, "b");
const HUGE = Buffer.alloc(16 << 20, "h");

describe("mirror-call-body-is-read-before-answering", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((_req, res) => res.end(ANSWER));
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "200", MIRROR_CACHE_MAX_BODY_BYTES: String(1 << 20) });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("a hit with a large unread request body on a Connection: close call arrives whole", async () => {
    for (let i = 0; i < 3; i++) {
      const id = rid();
      const t = await send(svc.port, { method: "POST", host: up.authority, stack: "test", rid: id, path: "/big", body: "x" });
      expect(t.body.length).toBe(ANSWER.length);
      const m = await send(svc.port, { method: "POST", host: up.authority, stack: "mirror", rid: id, path: "/big", body: BODY, headers: { connection: "close" } });
      expect(m.status).toBe(200);
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(m.body.length).toBe(ANSWER.length);
      expect(m.body.equals(ANSWER)).toBe(true);
    }
  });

  it("a store failure with a large unread request body gets its whole 503, at the lookup and during the wait", async () => {
    const mem = createMemoryStore({ maxBytes: 1 << 20 });
    const down = () => Promise.reject(new StoreUnavailableError("redis store unavailable (test)"));
    for (const broken of [{ lookup: down }, { wait: down }] as Array<Partial<CacheStore>>) {
      const s = await startService({ MIRROR_CACHE_WAIT_MS: "200", MIRROR_CACHE_MAX_BODY_BYTES: String(64 << 20) }, { store: { ...mem, ...broken } as CacheStore });
      try {
        for (let i = 0; i < 3; i++) {
          const m = await send(s.port, { method: "POST", host: up.authority, stack: "mirror", rid: rid(), path: "/x", body: HUGE, headers: { connection: "close" } });
          expect(m.status).toBe(503);
          expect(m.json().code).toBe("STORE_UNAVAILABLE");
        }
      } finally {
        await s.close();
      }
    }
  });

  it("a miss with a large unread request body gets its whole 504", async () => {
    const m = await send(svc.port, { method: "PUT", host: up.authority, stack: "mirror", rid: rid(), path: "/none", body: BODY, headers: { connection: "close" } });
    expect(m.status).toBe(504);
    expect(m.json().code).toBe("MIRROR_CACHE_MISS");
  });
});
