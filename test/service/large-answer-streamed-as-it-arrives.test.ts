// A large test answer with a declared length is streamed to the caller while the upstream still
// sends it (forward.ts, `AnswerStream`), and is recorded whole: the caller's bytes, the upstream's
// bytes and the mirror's replay are the same, and so are status and headers (x-mirror-cache
// aside). What streaming changes when the upstream fails mid-body, and why an answer over
// MIRROR_CACHE_MAX_RESPONSE_BYTES is still refused before a byte is written.
import { request as httpRequest, type ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STREAM_AFTER_BYTES } from "../../service/forward.ts";
import { callKey, callTuple } from "../../service/key.ts";
import { rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

const KiB = 1024;
const MAX_RESPONSE = 1024 * KiB;
const UPSTREAM_TIMEOUT_MS = 400;

function pattern(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * seed + (i >> 8)) & 0xff;
  return b;
}

interface Received {
  status: number;
  rawHeaders: string[];
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The response ended normally (all its declared bytes arrived). */
  complete: boolean;
}

/** A test/mirror call that resolves with whatever arrived, also when the answer is cut. `onHead`
 * runs when the status line and headers are in. */
function call(port: number, o: { host: string; stack: string; rid: string; path: string; method?: string; body?: Buffer }, onHead?: () => void): Promise<Received> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: o.host, "x-mirror-stack": o.stack, "x-request-id": o.rid };
    if (o.body) headers["content-length"] = String(o.body.length);
    const req = httpRequest({ host: "127.0.0.1", port, method: o.method ?? "GET", path: o.path, headers, agent: false, setHost: false }, (res) => {
      onHead?.();
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (complete: boolean) => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode!, rawHeaders: res.rawHeaders, headers: res.headers, body: Buffer.concat(chunks), complete });
      };
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => finish(res.complete));
      res.on("error", () => finish(false));
      res.on("close", () => finish(res.complete));
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

/** Raw headers with x-mirror-cache's value blanked, for comparing a test answer with its replay. */
function headersBut(rh: string[]): string[] {
  const out = rh.slice();
  for (let i = 0; i < out.length; i += 2) if (out[i].toLowerCase() === "x-mirror-cache") out[i + 1] = "*";
  return out;
}

describe("large-answer-streamed-as-it-arrives", () => {
  let up: Upstream;
  let svc: Service;
  /** Per request id: resolves when the test client has seen the answer's head. */
  const headSeen = new Map<string, () => void>();
  const waitForHead = (id: string) => new Promise<boolean>((r) => {
    const t = setTimeout(() => r(false), 3000);
    headSeen.set(id, () => {
      clearTimeout(t);
      r(true);
    });
  });
  /** Per request id: whether the upstream sent its last part only after the caller had the head. */
  const streamedEarly = new Map<string, boolean>();
  const BIG = pattern(300 * KiB);

  beforeAll(async () => {
    up = await startUpstream((req, res: ServerResponse) => {
      const id = String(req.headers["x-request-id"]);
      const url = new URL(req.url!, "http://x");
      const p = url.pathname;
      if (p === "/big" || p === "/echo-big") {
        // Head and the first 64 KiB, then the rest only once the caller has the head (or 3 s).
        res.writeHead(200, [["content-type", "application/octet-stream"], ["content-length", String(BIG.length)], ["x-part", "one"], ["set-cookie", "a=1"], ["set-cookie", "b=2"]].flat());
        res.write(BIG.subarray(0, 64 * KiB));
        void waitForHead(id).then((early) => {
          streamedEarly.set(id, early);
          res.end(BIG.subarray(64 * KiB));
        });
        return;
      }
      if (p === "/reset-mid-body" || p === "/stall-mid-body") {
        // A declared 300 KiB, 100 KiB sent, then a reset or nothing more.
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(BIG.length) });
        res.write(BIG.subarray(0, 100 * KiB));
        if (p === "/reset-mid-body") void waitForHead(id).then(() => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      if (p === "/small-reset-mid-body") {
        // At most STREAM_AFTER_BYTES declared: held until complete, so the failure is answered cleanly.
        res.writeHead(200, { "content-type": "text/plain", "content-length": String(STREAM_AFTER_BYTES) });
        res.write("partial");
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      if (p === "/declared-too-large") {
        // Declares more than the limit and then sends only a little (never the rest): a forwarder that
        // waited for the body would time out (504) instead of refusing at the headers (502).
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(MAX_RESPONSE + 1) });
        res.write(Buffer.alloc(1000, 1));
        return;
      }
      if (p === "/chunked-too-large") {
        // No declared length: 64 KiB chunks until past the limit.
        res.writeHead(200, { "content-type": "application/octet-stream" });
        let sent = 0;
        const more = () => {
          if (res.destroyed) return;
          if (sent > MAX_RESPONSE) return void res.end();
          sent += 64 * KiB;
          res.write(Buffer.alloc(64 * KiB, 2));
          setTimeout(more, 2);
        };
        more();
        return;
      }
      if (p === "/chunked-big") {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.write(BIG.subarray(0, 100 * KiB));
        setTimeout(() => res.end(BIG.subarray(100 * KiB)), 20);
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    svc = await startService({
      MIRROR_CACHE_MAX_RESPONSE_BYTES: String(MAX_RESPONSE),
      MIRROR_CACHE_UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS),
      MIRROR_CACHE_MAX_BODY_BYTES: String(512 * KiB),
      MIRROR_CACHE_WAIT_MS: "2000",
    });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  const key = (id: string, path: string, method = "GET") => callKey(callTuple(id, method, up.authority, path), 0);

  it("streams a large answer with a declared length before the upstream has finished; bytes, status and headers are the upstream's and the mirror's replay", async () => {
    const id = rid("stream");
    const t = await call(svc.port, { host: up.authority, stack: "test", rid: id, path: "/big" }, () => headSeen.get(id)?.());
    // the caller had the head while the upstream still held back most of the body
    expect(streamedEarly.get(id)).toBe(true);
    expect(t.complete).toBe(true);
    expect(t.status).toBe(200);
    expect(t.body.equals(BIG)).toBe(true);
    expect(t.headers["x-mirror-cache"]).toBe("pass");
    expect(t.headers["content-length"]).toBe(String(BIG.length));
    expect(t.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(t.headers["transfer-encoding"]).toBeUndefined();
    // a complete test answer means a stored record (the last bytes are written after the put)
    const rec = await svc.store.get(key(id, "/big"));
    expect(rec?.body.equals(BIG)).toBe(true);

    const m = await call(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/big" });
    expect(m.complete).toBe(true);
    expect(m.status).toBe(200);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.body.equals(t.body)).toBe(true);
    expect(headersBut(m.rawHeaders)).toEqual(headersBut(t.rawHeaders));
    expect(up.seen.filter((s) => s.headers["x-request-id"] === id)).toHaveLength(1);
  });

  it("a test call with a request body gets its large answer streamed too (once its body is read), identical to the replay", async () => {
    const id = rid("stream-post");
    const upload = pattern(200 * KiB, 13);
    const t = await call(svc.port, { method: "POST", host: up.authority, stack: "test", rid: id, path: "/echo-big", body: upload }, () => headSeen.get(id)?.());
    expect(streamedEarly.get(id)).toBe(true);
    expect([t.status, t.complete, t.body.equals(BIG)]).toEqual([200, true, true]);
    expect(up.seen.find((s) => s.headers["x-request-id"] === id)!.body.equals(upload)).toBe(true);
    // (The mirror sends no body: a mirror answer is written without reading the body, and a large
    // unread body on a closing connection makes the kernel reset it under the answer.)
    const m = await call(svc.port, { method: "POST", host: up.authority, stack: "mirror", rid: id, path: "/echo-big" });
    expect([m.status, m.headers["x-mirror-cache"], m.body.equals(t.body)]).toEqual([200, "hit", true]);
    expect(headersBut(m.rawHeaders)).toEqual(headersBut(t.rawHeaders));
  });

  it("an answer without a declared length (chunked) is taken whole: the caller gets a Content-Length like the replay, same bytes", async () => {
    const id = rid("chunked");
    const t = await call(svc.port, { host: up.authority, stack: "test", rid: id, path: "/chunked-big" });
    expect([t.status, t.complete, t.body.equals(BIG)]).toEqual([200, true, true]);
    expect(t.headers["content-length"]).toBe(String(BIG.length));
    expect(t.headers["transfer-encoding"]).toBeUndefined();
    const m = await call(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/chunked-big" });
    expect(m.body.equals(t.body)).toBe(true);
    expect(headersBut(m.rawHeaders)).toEqual(headersBut(t.rawHeaders));
  });

  /** A test call answered whole with a recorded 502 `code` (nothing streamed, nothing cut), and
   * its mirror call answered with the same bytes as a hit. */
  async function expectCleanFailureReplayed(idPrefix: string, path: string, code: string): Promise<void> {
    const id = rid(idPrefix);
    const t = await call(svc.port, { host: up.authority, stack: "test", rid: id, path });
    expect([t.status, t.complete, t.headers["x-mirror-cache"]]).toEqual([502, true, "pass"]);
    expect(JSON.parse(t.body.toString()).code).toBe(code);
    const m = await call(svc.port, { host: up.authority, stack: "mirror", rid: id, path });
    expect([m.status, m.headers["x-mirror-cache"], m.body.equals(t.body)]).toEqual([502, "hit", true]);
  }

  describe("the upstream fails mid-body after part of the answer was streamed", () => {
    it.each([
      ["resets its connection", "/reset-mid-body", 502, "UPSTREAM_UNAVAILABLE", "upstream_unavailable"],
      ["stalls past MIRROR_CACHE_UPSTREAM_TIMEOUT_MS", "/stall-mid-body", 504, "UPSTREAM_TIMEOUT", "upstream_timeout"],
    ] as const)("%s: the caller's answer is cut, the failure is recorded and the mirror gets it as a hit", async (_what, path, status, code, outcome) => {
      const before = await svc.app.metrics.registry.getSingleMetricAsString("mirror_cache_calls_total");
      const count = (text: string) => Number(new RegExp(`stack="test",outcome="${outcome}"} (\\d+)`).exec(text)?.[1] ?? 0);
      const id = rid("cut");
      const t = await call(svc.port, { host: up.authority, stack: "test", rid: id, path }, () => headSeen.get(id)?.());
      // the head and some of the body arrived, then the connection was cut: never a complete answer
      expect(t.status).toBe(200);
      expect(t.headers["x-mirror-cache"]).toBe("pass");
      expect(t.headers["content-length"]).toBe(String(BIG.length));
      expect(t.complete).toBe(false);
      expect(t.body.length).toBeGreaterThan(STREAM_AFTER_BYTES);
      expect(t.body.length).toBeLessThan(BIG.length);
      expect(t.body.equals(BIG.subarray(0, t.body.length))).toBe(true);

      const m = await call(svc.port, { host: up.authority, stack: "mirror", rid: id, path });
      expect(m.complete).toBe(true);
      expect(m.status).toBe(status);
      expect(m.headers["x-mirror-cache"]).toBe("hit");
      expect(m.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(m.body.toString()).code).toBe(code);
      const after = await svc.app.metrics.registry.getSingleMetricAsString("mirror_cache_calls_total");
      expect(count(after) - count(before)).toBe(1);
      // the service is fine afterwards
      const ok = await call(svc.port, { host: up.authority, stack: "test", rid: rid("after-cut"), path: "/chunked-big" });
      expect([ok.status, ok.complete]).toEqual([200, true]);
    });

    it("a short answer (at most STREAM_AFTER_BYTES declared) that fails mid-body is not cut: the caller gets the recorded 502, the mirror the same bytes", async () => {
      await expectCleanFailureReplayed("short-cut", "/small-reset-mid-body", "UPSTREAM_UNAVAILABLE");
    });
  });

  describe("an answer over MIRROR_CACHE_MAX_RESPONSE_BYTES is refused before anything is written", () => {
    it("declared over the limit: refused at its headers, without waiting for the body (502, not a body timeout); the mirror gets the same bytes", async () => {
      await expectCleanFailureReplayed("declared-too-large", "/declared-too-large", "UPSTREAM_RESPONSE_TOO_LARGE");
    });

    it("found mid-body (no declared length, chunked): the part already received was held, not streamed, so the caller still gets a clean 502; the mirror the same bytes", async () => {
      await expectCleanFailureReplayed("chunked-too-large", "/chunked-too-large", "UPSTREAM_RESPONSE_TOO_LARGE");
    });
  });

  it("a caller that goes away mid-stream: the exchange completes and is recorded for the mirror", async () => {
    const id = rid("gone");
    await new Promise<void>((resolve) => {
      const req = httpRequest(
        { host: "127.0.0.1", port: svc.port, path: "/big", agent: false, setHost: false, headers: { host: up.authority, "x-mirror-stack": "test", "x-request-id": id } },
        (res) => {
          res.once("data", () => {
            req.destroy();
            headSeen.get(id)?.();
            resolve();
          });
        },
      );
      req.on("error", () => undefined);
      req.end();
    });
    const m = await call(svc.port, { host: up.authority, stack: "mirror", rid: id, path: "/big" });
    expect([m.status, m.headers["x-mirror-cache"], m.complete]).toEqual([200, "hit", true]);
    expect(m.body.equals(BIG)).toBe(true);
    await sleep(10);
    const ok = await send(svc.port, { host: up.authority, stack: "test", rid: rid("after-gone"), path: "/chunked-big" });
    expect(ok.status).toBe(200);
  });
});
