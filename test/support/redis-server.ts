// Starts a throw-away redis-server on a free loopback port. Used by the vitest global setup and by
// fault-injection tests that kill and restart Redis.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    sock.once("error", () => resolve(false));
    sock.once("connect", () => sock.write("PING\r\n"));
    sock.once("data", (d) => {
      sock.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
  });
}

export interface RedisServer {
  port: number;
  url: string;
  /** Stop the server (SIGKILL when `hard`, to emulate a crash). */
  stop(hard?: boolean): Promise<void>;
  /** Start it again on the same port. */
  start(): Promise<void>;
  /** Stop for good and remove its data directory. */
  destroy(): Promise<void>;
  /** The running server's process id (the bench pins it to a CPU). */
  readonly pid: number | undefined;
}

export async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "mesh-mirror-redis-"));
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    child = spawn(
      "redis-server",
      ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "yes"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const spawned = child;
    const failed = new Promise<never>((_, reject) => {
      spawned.once("error", (err) =>
        reject(new Error(`cannot start redis-server (${err.message}); install it: apt-get install redis-server`)),
      );
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const up = await Promise.race([ping(p), failed]);
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not answer PING on 127.0.0.1:${p} within 10 s`);
  }

  async function stop(hard = false): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((r) => c.once("exit", () => r()));
    c.kill(hard ? "SIGKILL" : "SIGTERM");
    await exited;
  }

  await start();
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    start,
    stop,
    destroy: async () => {
      await stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
    get pid() {
      return child?.exitCode === null ? child.pid : undefined;
    },
  };
}
