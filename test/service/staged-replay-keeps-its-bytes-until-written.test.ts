// Record bodies of STAGE_MIN_BYTES to STAGE_MAX_BYTES are copied into a few reused staging
// buffers before they are written (service/staging.ts). A staging buffer must not be handed to
// another answer while the answer it holds still waits to be written. Here many mirror calls are
// pipelined on one connection that reads nothing: their answers pile up in the kernel and then in
// the service, each in its staging buffer, while mirror calls on other connections stage and
// write their own. Every piled-up answer must still carry its own record's bytes.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE_MAX_BYTES, STAGE_MIN_BYTES } from "../../service/staging.ts";
import { rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

const SIZE = 64 * 1024;
/** 160 × 64 KiB = 10 MiB: more than loopback buffers between a sender and a paused reader. */
const PIPELINED = 160;
const OTHERS = 40;
const fillOf = (i: number) => 1 + i; // 1…200, one byte value per record

/** The answers on `raw`, split by their content-length. */
function splitAnswers(raw: Buffer): Array<{ head: string; body: Buffer }> {
  const out: Array<{ head: string; body: Buffer }> = [];
  let at = 0;
  while (at < raw.length) {
    const headEnd = raw.indexOf("\r\n\r\n", at);
    if (headEnd < 0) throw new Error(`an incomplete head at byte ${at}`);
    const head = raw.subarray(at, headEnd).toString("latin1");
    const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
    out.push({ head, body: raw.subarray(headEnd + 4, headEnd + 4 + len) });
    at = headEnd + 4 + len;
  }
  return out;
}

describe("staged-replay-keeps-its-bytes-until-written", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(Buffer.alloc(SIZE, fillOf(Number(req.url!.slice(3))))));
    svc = await startService({ MIRROR_CACHE_MAX_BYTES: String(64 * 1024 * 1024) });
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  it("pipelined mirror answers waiting to be written keep their bytes while other answers are staged", async () => {
    expect(SIZE >= STAGE_MIN_BYTES && SIZE <= STAGE_MAX_BYTES).toBe(true); // these bodies are staged
    const ids = Array.from({ length: PIPELINED + OTHERS }, () => rid());
    for (let i = 0; i < ids.length; i++) {
      const t = await send(svc.port, { host: up.authority, stack: "test", rid: ids[i], path: `/b/${i}` });
      expect(t.body.equals(Buffer.alloc(SIZE, fillOf(i)))).toBe(true);
    }

    const sock = connect(svc.port, "127.0.0.1");
    sock.pause();
    const chunks: Buffer[] = [];
    sock.on("data", (c: Buffer) => chunks.push(c));
    const requests = ids
      .slice(0, PIPELINED)
      .map((id, i) => `GET /b/${i} HTTP/1.1\r\nHost: ${up.authority}\r\nx-mirror-stack: mirror\r\nx-request-id: ${id}\r\n${i === PIPELINED - 1 ? "Connection: close\r\n" : ""}\r\n`);
    sock.write(requests.join(""));
    await sleep(300); // the service answers what it has parsed; the kernel takes what fits

    // Meanwhile other answers take, fill and give back staging buffers.
    const others = await Promise.all(ids.slice(PIPELINED).map((id, j) => send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: `/b/${PIPELINED + j}` })));
    others.forEach((a, j) => {
      expect(a.headers["x-mirror-cache"]).toBe("hit");
      expect(a.body.equals(Buffer.alloc(SIZE, fillOf(PIPELINED + j)))).toBe(true);
    });

    const ended = new Promise((r) => sock.once("end", r));
    sock.resume();
    await ended;
    const answers = splitAnswers(Buffer.concat(chunks));
    expect(answers).toHaveLength(PIPELINED);
    answers.forEach(({ head, body }, i) => {
      expect(head).toMatch(/^HTTP\/1\.1 200 .*x-mirror-cache: hit/s);
      expect(body.length).toBe(SIZE);
      // The first byte that is not this record's, -1 when there is none.
      expect({ i, foreign: body.findIndex((b) => b !== fillOf(i)) }).toEqual({ i, foreign: -1 });
    });
  });
});
