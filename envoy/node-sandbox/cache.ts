// The real mirror-cache service as a child process (`node --import tsx service/server.ts`), on a
// loopback port, configured through its environment (CONTRACTS.md). It can be stopped and started
// again on the same port, which is how "cache down" is produced.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { freePort, LOOPBACK } from "./net.ts";

export interface CacheOptions {
  /** Repository root (where `service/server.ts` lives). */
  root: string;
  port?: number;
  /** Extra environment (MIRROR_CACHE_*). PORT and HOST are set by the sandbox. */
  env?: Record<string, string>;
  /** How long to wait for `/readyz` (default 30 s: tsx compiles on first start). */
  readyTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface CacheHandle {
  port: number;
  address: string;
  readonly running: boolean;
  /** (Re)start on the same port and wait until `/readyz` answers 200. */
  start(): Promise<void>;
  /** SIGTERM (graceful drain), or SIGKILL when `hard`; resolves once the process exited. */
  stop(hard?: boolean): Promise<void>;
  /** The last lines the service wrote (stdout and stderr). */
  output(): string;
  /** `/metrics` text, or undefined when the service is down. */
  metrics(): Promise<string | undefined>;
}

export async function startCache(options: CacheOptions): Promise<CacheHandle> {
  const entry = join(options.root, "service", "server.ts");
  if (!existsSync(entry)) {
    throw new Error(`mirror-cache entry ${entry} does not exist (service not built yet?)`);
  }
  const port = options.port ?? (await freePort());
  const address = `${LOOPBACK}:${port}`;
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString("utf8").split("\n")) {
      if (!l) continue;
      lines.push(l);
      options.log?.(`mirror-cache: ${l}`);
    }
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: "production",
      // info: the process says when it listens (see below); per-call lines are debug
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
      ...options.env,
      PORT: String(port),
      HOST: LOOPBACK,
    };
    const c = spawn(process.execPath, ["--import", "tsx", entry], { cwd: options.root, env, stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    // Never leave a mirror-cache behind if this process dies without stop().
    const reap = () => c.kill("SIGKILL");
    process.once("exit", reap);
    c.once("exit", () => process.off("exit", reap));
    // Ready = this child said it listens, and /readyz answers. /readyz alone is not enough: the
    // port comes from freePort() and, under a loaded parallel test run, another process can take
    // it first; its /readyz would then answer for ours (seen as a flake: every call refused).
    let listening = false;
    const quietLogs = ["warn", "error", "fatal", "silent"].includes(String(env.LOG_LEVEL));
    c.stdout!.on("data", (chunk: Buffer) => {
      if (!listening && chunk.toString("utf8").includes('"msg":"mirror-cache listening"')) listening = true;
      keep(chunk);
    });
    c.stderr!.on("data", keep);
    exited = new Promise((r) => c.once("exit", () => r()));
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`mirror-cache exited (${c.exitCode ?? c.signalCode}) before ready:\n${lines.slice(-30).join("\n")}`);
      }
      try {
        const r = await request(`http://${address}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000 });
        await r.body.dump();
        if (r.statusCode === 200 && (listening || quietLogs)) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    c.kill("SIGKILL");
    throw new Error(`mirror-cache not ready on ${address}:\n${lines.slice(-30).join("\n")}`);
  }

  async function stop(hard = false): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(hard ? "SIGKILL" : "SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  }

  await start();
  return {
    port,
    address,
    get running() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    start,
    stop,
    output: () => lines.join("\n"),
    async metrics() {
      try {
        const r = await request(`http://${address}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 });
        const t = await r.body.text();
        return r.statusCode === 200 ? t : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
