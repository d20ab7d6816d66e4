// Request-id collisions (the pairing key is chosen by apps, so it can collide, by accident or on
// purpose): a mirror call with a test call's id but another tuple; two test calls with the same
// id and tuple (two test pods, or a retry) — on one replica and on two replicas sharing Redis;
// a mirror flooding an id before its test call. Invariants: a mirror only ever gets the record of
// its own key (else 504 miss), never another tuple's answer; no test call is lost or answered with
// another test call's answer; the mirror's own counters cannot shift the test stack's keys; the
// upstream only sees test calls.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../../service/store/redis.ts";
import { send, startService, type Service } from "../service/support/harness.ts";
import { MARKER, startFaultUpstream, type FaultUpstream } from "./support.ts";

describe("request-id collisions across stacks and within the test stack", () => {
  let up: FaultUpstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startFaultUpstream();
    svc = await startService({ MIRROR_CACHE_WAIT_MS: "400" });
  });
  afterAll(async () => {
    await svc?.close();
    await up?.close();
  });
  const test = (rid: string, path = "/ok", method = "GET", port = svc.port) => send(port, { host: up.authority, stack: "test", rid, path, method });
  const mirror = (rid: string, path = "/ok", method = "GET", port = svc.port, host = up.authority) =>
    send(port, { host, stack: "mirror", rid, path, method, headers: { [MARKER]: "mirror" } });
  const seq = (body: Buffer) => JSON.parse(body.toString()).seq as number;

  it("same id, another tuple (path, method, authority, query): the mirror misses, it never gets another call's answer", async () => {
    const rid = `rel-coll-${Date.now()}`;
    const t = await test(rid, "/ok?account=alice");
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    for (const [path, method, host] of [
      ["/ok?account=bob", "GET", up.authority],
      ["/ok", "GET", up.authority],
      ["/ok?account=alice", "POST", up.authority],
      ["/ok?account=alice", "GET", `localhost.test:${up.port}`],
      ["/OK?account=alice", "GET", up.authority],
    ] as const) {
      const m = await mirror(rid, path, method, svc.port, host);
      expect(m.status, `${method} ${host}${path}`).toBe(504);
      expect(m.headers["x-mirror-cache"]).toBe("miss");
      expect(m.body.equals(t.body)).toBe(false);
    }
    // its own tuple still pairs
    const own = await mirror(rid, "/ok?account=alice");
    expect(own.headers["x-mirror-cache"]).toBe("hit");
    expect(own.body.equals(t.body)).toBe(true);
    expect(up.markerCount("mirror")).toBe(0);
  });

  it("two test calls with the same id and tuple at once: both forwarded and answered with their own answer; the mirrors get exactly those two answers", async () => {
    const rid = `rel-twin-${Date.now()}`;
    const [a, b] = await Promise.all([test(rid), test(rid)]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(seq(a.body)).not.toBe(seq(b.body)); // two upstream answers, none lost, none shared
    expect(up.seen.filter((s) => s.requestId === rid)).toHaveLength(2);
    const m0 = await mirror(rid);
    const m1 = await mirror(rid);
    const m2 = await mirror(rid);
    expect([seq(m0.body), seq(m1.body)].sort()).toEqual([seq(a.body), seq(b.body)].sort());
    expect(m0.headers["x-mirror-cache"]).toBe("hit");
    expect(m1.headers["x-mirror-cache"]).toBe("hit");
    expect(m2.headers["x-mirror-cache"]).toBe("miss"); // there were only two
    expect(up.markerCount("mirror")).toBe(0);
  });

  it("a mirror flooding an id before its test call cannot shift or poison the test stack's records", async () => {
    const rid = `rel-flood-${Date.now()}`;
    const waiting = Array.from({ length: 5 }, () => mirror(rid)); // n = 0..4 on the mirror side
    await new Promise((r) => setTimeout(r, 50));
    const t0 = await test(rid); // n = 0 on the test side, whatever the mirror did
    const answers = await Promise.all(waiting);
    const hits = answers.filter((a) => a.headers["x-mirror-cache"] === "hit");
    expect(hits).toHaveLength(1);
    expect(hits[0].body.equals(t0.body)).toBe(true);
    expect(answers.filter((a) => a.status === 504)).toHaveLength(4);
    // the test stack's second call is n = 1 and goes to the upstream as usual
    const t1 = await test(rid);
    expect(t1.headers["x-mirror-cache"]).toBe("pass");
    expect(seq(t1.body)).not.toBe(seq(t0.body));
    expect(up.seen.filter((s) => s.requestId === rid)).toHaveLength(2);
    expect(up.markerCount("mirror")).toBe(0);
  });

  describe("on two replicas sharing Redis", () => {
    let a: Service;
    let b: Service;
    beforeAll(async () => {
      const url = inject("redisUrl");
      const prefix = `rel-coll-${process.pid}-${Date.now()}:`;
      a = await startService({ MIRROR_CACHE_WAIT_MS: "1000" }, { store: createRedisStore({ url, keyPrefix: prefix }) });
      b = await startService({ MIRROR_CACHE_WAIT_MS: "1000" }, { store: createRedisStore({ url, keyPrefix: prefix }) });
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
    });

    it("same id and tuple through both replicas at once: distinct keys (atomic counter), both forwarded, none lost; mirrors through either replica pair", async () => {
      const rid = `rel-redis-twin-${Date.now()}`;
      const answers = await Promise.all([test(rid, "/ok", "GET", a.port), test(rid, "/ok", "GET", b.port), test(rid, "/ok", "GET", a.port), test(rid, "/ok", "GET", b.port)]);
      for (const x of answers) expect(x.status).toBe(200);
      const seqs = answers.map((x) => seq(x.body));
      expect(new Set(seqs).size).toBe(4);
      expect(up.seen.filter((s) => s.requestId === rid)).toHaveLength(4);
      const mirrors = [];
      for (let i = 0; i < 4; i++) mirrors.push(await mirror(rid, "/ok", "GET", i % 2 ? b.port : a.port));
      for (const m of mirrors) expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(mirrors.map((m) => seq(m.body)).sort()).toEqual([...seqs].sort());
      expect(up.markerCount("mirror")).toBe(0);
    });
  });
});
