import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../service/store/memory.ts";
import type { CacheStore } from "../../service/store/types.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";
import { spyConnector } from "./support/spies.ts";

/** A memory store that records which methods each call used. */
function recordingStore(): CacheStore & { ops: string[] } {
  const inner = createMemoryStore({ maxBytes: 1 << 24 });
  const ops: string[] = [];
  const s = new Proxy(inner, {
    get(t, p, r) {
      const v = Reflect.get(t, p, r);
      if (typeof v === "function" && p !== "stats") return (...args: unknown[]) => (ops.push(String(p)), (v as (...a: unknown[]) => unknown).apply(t, args));
      return v;
    },
  }) as CacheStore & { ops: string[] };
  (s as { ops: string[] }).ops = ops;
  return s;
}

describe("mirror-never-reaches-upstream", () => {
  let up: Upstream;
  let svc: Service;
  const connector = spyConnector();
  const store = recordingStore();
  beforeAll(async () => {
    up = await startUpstream((_q, res) => res.end("real"));
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "150" }, { connector, store });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("a mirror call without a record misses and opens no connection, for every method and with a body", async () => {
    for (const method of ["GET", "POST", "PUT", "DELETE", "PATCH"]) {
      const a = await send(svc.port, { method, host: up.authority, stack: "mirror", rid: rid(), path: "/charge", body: method === "GET" ? undefined : "amount=100" });
      expect(a.status).toBe(504);
      expect(a.headers["x-mirror-cache"]).toBe("miss");
      expect(a.json().code).toBe("MIRROR_CACHE_MISS");
    }
    expect(up.seen).toHaveLength(0);
    expect(connector.attempts).toHaveLength(0);
  });

  it("a mirror call only reads the store: no put, no claim, no release", async () => {
    store.ops.length = 0;
    await send(svc.port, { host: up.authority, stack: "mirror", rid: rid() });
    expect(store.ops.length).toBeGreaterThan(0);
    for (const op of store.ops) expect(["lookup", "lookupNow", "sequence", "get", "wait"]).toContain(op);
  });

  it("a mirror call with a record is answered from it, and the upstream sees only the test call", async () => {
    const id = rid();
    await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/x" });
    const attempts = connector.attempts.length;
    const seen = up.seen.length;
    store.ops.length = 0;
    for (let i = 0; i < 3; i++) {
      // the 2nd and 3rd mirror calls have no test-call partner: misses, still no upstream
      const m = await send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/x" });
      expect(m.headers["x-mirror-cache"]).toBe(i === 0 ? "hit" : "miss");
    }
    expect(up.seen.length).toBe(seen);
    expect(connector.attempts.length).toBe(attempts);
    for (const op of store.ops) expect(["lookup", "lookupNow", "sequence", "get", "wait"]).toContain(op);
  });

  it("structurally: the mirror handler imports nothing that can open a connection", () => {
    const src = readFileSync(new URL("../../service/handle-mirror-call.ts", import.meta.url), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "");
    const imports = [...src.matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]);
    expect(imports.sort()).toEqual(["./call.ts"]);
    expect(src).not.toMatch(/\.put\(|\.claim\(|\.release\(|forward|undici|node:http|node:net/);
  });
});
