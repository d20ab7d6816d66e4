import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, sleep, spawnServer, startUpstream, type Upstream } from "./support/harness.ts";

describe("graceful-shutdown-drains", () => {
  let up: Upstream;
  let child: ChildProcess;
  let port: number;
  beforeAll(async () => {
    up = await startUpstream((_req, res) => setTimeout(() => res.end("slow answer"), 800));
    ({ child, port } = await spawnServer());
  });
  afterAll(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await up.close();
  });

  it("SIGTERM mid-call: the call completes, new connections are refused, the process exits 0", async () => {
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const inFlight = send(port, { host: up.authority, stack: "test", rid: rid(), path: "/slow" });
    await sleep(200);
    child.kill("SIGTERM");
    await sleep(100);
    const refused = await send(port, { path: "/healthz" }).then(
      (a) => a.status,
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(refused).toBe("ECONNREFUSED");
    const a = await inFlight;
    expect(a.status).toBe(200);
    expect(a.headers["x-mirror-cache"]).toBe("pass");
    expect(a.text).toBe("slow answer");
    expect(await exited).toBe(0);
  });
});

describe("graceful-shutdown-drains (in process)", () => {
  it("a call arriving on an open connection during the drain gets 503 SHUTTING_DOWN with Connection: close; the in-flight one completes and its keep-alive connection does not hold up the close", async () => {
    const { startService } = await import("./support/harness.ts");
    const { connect } = await import("node:net");
    const up = await startUpstream((_q, res) => setTimeout(() => res.end("drained"), 400));
    const svc = await startService();
    try {
      const sock = connect(svc.port, "127.0.0.1");
      let raw = "";
      sock.on("data", (d) => (raw += d));
      const ended = new Promise<void>((r) => sock.on("close", () => r()));
      await new Promise<void>((r) => sock.once("connect", () => r()));
      const req = (id: string) => `GET /p HTTP/1.1\r\nHost: ${up.authority}\r\nx-mirror-stack: test\r\nx-request-id: ${id}\r\n\r\n`;
      sock.write(req(rid())); // in flight (the upstream takes 400 ms)
      await sleep(100);
      const closed = svc.app.close();
      await sleep(100);
      sock.write(req(rid())); // arrives during the drain, on the open connection
      await closed; // resolves once the in-flight call is answered: keep-alive does not hold it
      await ended;
      const answers = raw.split(/(?=HTTP\/1\.1 )/);
      expect(answers).toHaveLength(2);
      expect(answers[0]).toMatch(/^HTTP\/1\.1 200/);
      expect(answers[0]).toContain("drained");
      expect(answers[1]).toMatch(/^HTTP\/1\.1 503/);
      expect(answers[1]).toMatch(/connection: close/i);
      expect(answers[1]).toContain('"code":"SHUTTING_DOWN"');
      expect(answers[1]).not.toMatch(/x-mirror-cache/i);
    } finally {
      await svc.store.close();
      await up.close();
    }
  });
});
