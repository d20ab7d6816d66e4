// The memory store reuses the buffers of bodies that left it (store/body-pool.ts). A replay that
// is still being written to a slow client must keep sending its own record's bytes even when that
// record is evicted and new records are written meanwhile: its buffer is leased until the answer
// is handed to the OS. Bodies are larger than loopback's socket buffers, so the replay really is
// still pending in the process while the store churns (loopback takes ~4 MiB into the sender's
// buffer plus the paused receiver's default window; the rest waits in the service). The same
// holds for a test call's own streamed answer, whose record body the store adopted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pausedCalls, rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

const SIZE = 6 * 1024 * 1024;
const FILLS = "bcdefghijk".split("");
const bodyOf = (fill: string) => Buffer.alloc(SIZE, fill);

describe("slow-replay-keeps-its-bytes-while-the-store-reuses-buffers", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    const bodies = new Map(["a", ...FILLS].map((f) => [f, bodyOf(f)]));
    up = await startUpstream((req, res) => res.end(bodies.get(req.url!.slice(-1))));
    // Room for eight records, so the pool keeps an idle buffer of this size (budget / 8).
    svc = await startService({ MIRROR_CACHE_MAX_BYTES: String(8 * SIZE + 64 * 1024), MIRROR_CACHE_MAX_RESPONSE_BYTES: String(SIZE) });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("a paused mirror client still gets its record's bytes after the record was evicted and its space reused", async () => {
    const id = rid();
    const t = await send(svc.port, { host: up.authority, stack: "test", rid: id, path: "/a" });
    expect(t.body.length).toBe(SIZE);

    // The mirror call, read by nobody for now.
    const mirror = pausedCalls(svc.port, { host: up.authority, stack: "mirror", calls: [{ rid: id, path: "/a" }] });
    await sleep(200); // the service answers: the kernel takes what fits, the rest waits in the process

    // Ten more records: "a" is evicted by the eighth, and the later ones need buffers.
    for (const f of FILLS) {
      const r = await send(svc.port, { host: up.authority, stack: "test", rid: rid(), path: `/${f}` });
      expect(r.body.equals(bodyOf(f))).toBe(true);
    }
    expect(svc.store.stats().entries).toBe(8);

    const answers = await mirror.finish();
    expect(answers).toHaveLength(1);
    const [{ head, body }] = answers;
    expect(head).toMatch(/^HTTP\/1\.1 200 .*x-mirror-cache: hit/s);
    expect(body.length).toBe(SIZE);
    const foreign = body.findIndex((b) => b !== 0x61); // "a"
    expect(foreign).toBe(-1);
  });

  // The test call's own answer is streamed from the upstream's chunks while its record's body is
  // gathered into a store buffer that `put` adopts (ForwarderOptions.bodyBuffer). The answer must
  // never be written from that buffer: once the record is evicted it goes to the next record.
  it("a paused test client still gets its upstream's bytes after its record was evicted and its buffer reused", async () => {
    const test = pausedCalls(svc.port, { host: up.authority, stack: "test", calls: [{ rid: rid(), path: "/a" }] });
    await sleep(500); // forwarded and recorded; most of the answer waits in the process

    for (const f of FILLS) {
      const r = await send(svc.port, { host: up.authority, stack: "test", rid: rid(), path: `/${f}` });
      expect(r.body.equals(bodyOf(f))).toBe(true);
    }

    const answers = await test.finish();
    expect(answers).toHaveLength(1);
    const [{ head, body }] = answers;
    expect(head).toMatch(/^HTTP\/1\.1 200 .*x-mirror-cache: pass/s);
    expect(body.length).toBe(SIZE);
    expect(body.findIndex((b) => b !== 0x61)).toBe(-1);
  });
});
