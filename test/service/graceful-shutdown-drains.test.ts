import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/redis-server.ts";
import { rid, send, sleep, startUpstream, type Upstream } from "./support/harness.ts";

function waitForLine(child: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; output: ${buf}`)), ms);
    child.stdout!.on("data", (d) => {
      buf += d;
      const line = buf.split("\n").find((l) => re.test(l));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
  });
}

describe("graceful-shutdown-drains", () => {
  let up: Upstream;
  let child: ChildProcess;
  let port: number;
  beforeAll(async () => {
    up = await startUpstream((_req, res) => setTimeout(() => res.end("slow answer"), 800));
    port = await freePort();
    child = spawn(process.execPath, ["--import", "tsx", "service/server.ts"], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32", LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    await waitForLine(child, /mirror-cache listening/, 20_000);
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
