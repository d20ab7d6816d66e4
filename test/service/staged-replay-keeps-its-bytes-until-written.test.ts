// Record bodies of STAGE_MIN_BYTES to STAGE_MAX_BYTES are copied into a few reused staging
// buffers before they are written (service/staging.ts). A staging buffer must not be handed to
// another answer while the answer it holds still waits to be written. Here many mirror calls are
// pipelined on one connection that reads nothing: their answers pile up in the kernel and then in
// the service, each in its staging buffer, while mirror calls on other connections stage and
// write their own. Every piled-up answer must still carry its own record's bytes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stages } from "../../service/staging.ts";
import { pausedCalls, rid, send, sleep, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";

const SIZE = 64 * 1024;
/** 160 × 64 KiB = 10 MiB: more than loopback buffers between a sender and a paused reader. */
const PIPELINED = 160;
const OTHERS = 40;
const fillOf = (i: number) => 1 + i; // 1…200, one byte value per record

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
    expect(stages(SIZE)).toBe(true); // these bodies are staged
    const ids = Array.from({ length: PIPELINED + OTHERS }, () => rid());
    for (let i = 0; i < ids.length; i++) {
      const t = await send(svc.port, { host: up.authority, stack: "test", rid: ids[i], path: `/b/${i}` });
      expect(t.body.equals(Buffer.alloc(SIZE, fillOf(i)))).toBe(true);
    }

    const piled = pausedCalls(svc.port, { host: up.authority, stack: "mirror", calls: ids.slice(0, PIPELINED).map((id, i) => ({ rid: id, path: `/b/${i}` })) });
    await sleep(300); // the service answers what it has parsed; the kernel takes what fits

    // Meanwhile other answers take, fill and give back staging buffers.
    const others = await Promise.all(ids.slice(PIPELINED).map((id, j) => send(svc.port, { host: up.authority, stack: "mirror", rid: id, path: `/b/${PIPELINED + j}` })));
    others.forEach((a, j) => {
      expect(a.headers["x-mirror-cache"]).toBe("hit");
      expect(a.body.equals(Buffer.alloc(SIZE, fillOf(PIPELINED + j)))).toBe(true);
    });

    const answers = await piled.finish();
    expect(answers).toHaveLength(PIPELINED);
    answers.forEach(({ head, body }, i) => {
      expect(head).toMatch(/^HTTP\/1\.1 200 .*x-mirror-cache: hit/s);
      expect(body.length).toBe(SIZE);
      // The first byte that is not this record's, -1 when there is none.
      expect({ i, foreign: body.findIndex((b) => b !== fillOf(i)) }).toEqual({ i, foreign: -1 });
    });
  });
});
