// Shared helpers of the reliability suites: the real mirror-cache as a child process (killable,
// restartable on the same port), a fault-injecting upstream that counts every call by stack header
// and by marker, a proxy-style client for the sandbox sidecars, /metrics parsing, RSS sampling and
// bounded waits. Everything stays on 127.0.0.1.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../support/redis-server.ts";
import { CACHE_CLUSTER } from "../../envoy/node-sandbox/sandbox.ts";
import { startSidecar, type SidecarHandle } from "../../envoy/node-sandbox/sidecar.ts";
import { WASM_PATH } from "../filter/helpers.ts";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SERVER_ENTRY = join(REPO, "service", "server.ts");
/** Header the reliability clients put on every call they send as the mirror stack. The service
 * forwards end-to-end headers untouched, so an upstream call carrying it came from a mirror. */
export const MARKER = "x-reliability-origin";
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` until it holds or `timeoutMs` passed; returns whether it held (never asserts on time). */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return true;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP client: one request per connection, exactly the headers given.

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface RequestSpec {
  method?: string;
  /** Request target: a path, or an absolute URL (proxy form, for the sidecars). */
  target: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Destroy the connection this many ms after the request was sent (client disconnect). */
  abortAfterMs?: number;
  /** Send the body as chunks and then hang (mid-body disconnect with abortAfterMs). */
  partialBody?: Buffer;
  timeoutMs?: number;
}

/** A request to 127.0.0.1:port. Resolves `undefined` when the client itself aborted. */
export function http(port: number, spec: RequestSpec): Promise<Reply | undefined> {
  return new Promise((resolveP, reject) => {
    const headers: Record<string, string | string[]> = { ...(spec.headers ?? {}) };
    if (spec.body !== undefined) headers["content-length"] = String(Buffer.byteLength(spec.body));
    let aborted = false;
    const req = httpRequest(
      { host: "127.0.0.1", port, method: spec.method ?? "GET", path: spec.target, headers, agent: false, setHost: !("host" in headers) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolveP({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") });
        });
        res.on("error", (e) => (aborted ? resolveP(undefined) : reject(e)));
      },
    );
    req.on("error", (e) => (aborted ? resolveP(undefined) : reject(e)));
    if (spec.timeoutMs) req.setTimeout(spec.timeoutMs, () => req.destroy(new Error(`no answer within ${spec.timeoutMs} ms`)));
    if (spec.abortAfterMs !== undefined) {
      setTimeout(() => {
        aborted = true;
        req.destroy();
        resolveP(undefined);
      }, spec.abortAfterMs);
    }
    if (spec.partialBody) {
      req.write(spec.partialBody);
    } else req.end(spec.body);
  });
}

/** An app's outbound call through a sidecar (absolute-form request target, like an HTTP proxy). */
export function viaSidecar(sidecarAddress: string, o: { method?: string; authority: string; path: string; headers?: Record<string, string>; body?: string | Buffer; abortAfterMs?: number }) {
  const port = Number(sidecarAddress.split(":")[1]);
  return http(port, {
    method: o.method,
    target: `http://${o.authority}${o.path}`,
    headers: { host: o.authority, ...(o.headers ?? {}) },
    body: o.body,
    abortAfterMs: o.abortAfterMs,
  });
}

// ---------------------------------------------------------------------------------------------
// Fault upstream

export interface SeenCall {
  method: string;
  url: string;
  requestId: string | undefined;
  stack: string | undefined;
  marker: string | undefined;
  bodyBytes: number;
}

export interface FaultUpstream {
  port: number;
  authority: string;
  /** Every request that reached it (headers received), in order. */
  seen: SeenCall[];
  /** Calls carrying MARKER: mirror → a violation. */
  markerCount(value?: string): number;
  /** Calls carrying this stack-header value. */
  stackCount(value: string): number;
  /** Calls currently being answered (in flight at the upstream). */
  readonly inFlight: number;
  reset(): void;
  close(): Promise<void>;
}

/**
 * Routes (path, query ignored unless stated):
 *   /ok                      200, body names the call's sequence number (each call differs)
 *   /bytes?n=N               200, N bytes (first bytes carry the sequence number)
 *   /slow?ms=N               waits N ms before the headers
 *   /slow-body?ms=N          headers + a first chunk at once, the rest after N ms
 *   /reset                   destroys the socket before any byte of an answer
 *   /reset-mid-body          headers + a first chunk, then destroys the socket
 *   /status/NNN              answers NNN with a JSON body (and Retry-After on 503)
 */
export async function startFaultUpstream(stackHeader = "x-mirror-stack"): Promise<FaultUpstream> {
  const seen: SeenCall[] = [];
  let inFlight = 0;
  let seq = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => undefined);
    req.on("end", () => {
      const n = ++seq;
      let url: URL;
      try {
        url = new URL(`http://u.invalid${(req.url ?? "/").startsWith("/") ? req.url : `/${req.url}`}`);
      } catch {
        url = new URL("http://u.invalid/unparsable");
      }
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        requestId: req.headers["x-request-id"] as string | undefined,
        stack: req.headers[stackHeader] as string | undefined,
        marker: req.headers[MARKER] as string | undefined,
        bodyBytes: Buffer.concat(chunks).length,
      });
      inFlight++;
      res.once("close", () => inFlight--);
      void answer(url, n, res);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  async function answer(url: URL, n: number, res: ServerResponse): Promise<void> {
    const p = url.pathname;
    const ms = Number(url.searchParams.get("ms") ?? 0);
    const json = (status: number, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
      const body = JSON.stringify({ seq: n, path: url.pathname + url.search, ...extra });
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-upstream-seq": String(n), ...headers });
      res.end(body);
    };
    if (p === "/ok") return json(200);
    if (p === "/bytes") {
      const size = Math.max(16, Number(url.searchParams.get("n") ?? 1024));
      const body = Buffer.alloc(size, 0x61);
      body.write(`seq=${n};`, 0);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
      return void res.end(body);
    }
    if (p === "/slow") {
      await sleep(ms);
      if (!res.destroyed) json(200, { slept: ms });
      return;
    }
    if (p === "/slow-body") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write(`seq=${n} first chunk;`);
      await sleep(ms);
      if (!res.destroyed) res.end("rest");
      return;
    }
    if (p === "/reset") return void res.socket?.destroy();
    if (p === "/reset-mid-body") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
      res.write(`seq=${n} partial`);
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    const m = /^\/status\/(\d{3})$/.exec(p);
    if (m) return json(Number(m[1]), { failure: true }, Number(m[1]) === 503 ? { "retry-after": "7" } : {});
    json(404, { error: "unknown route" });
  }
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    authority: `127.0.0.1:${port}`,
    seen,
    markerCount: (value = "mirror") => seen.filter((s) => s.marker === value).length,
    stackCount: (value) => seen.filter((s) => s.stack === value).length,
    get inFlight() {
      return inFlight;
    },
    reset: () => {
      seen.length = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// The service as a child process

export interface ServiceProcess {
  port: number;
  readonly pid: number | undefined;
  readonly alive: boolean;
  /** Exit codes / signals of every process this handle started and that ended. */
  exits: Array<{ code: number | null; signal: NodeJS.Signals | null; killedByTest: boolean }>;
  start(): Promise<void>;
  /** SIGKILL (crash) or SIGTERM; resolves once exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  output(): string;
  readyz(): Promise<{ status: number; body: string } | undefined>;
  metrics(): Promise<Metrics | undefined>;
  /** VmRSS of the live process, in bytes (from /proc). */
  rss(): number | undefined;
}

/** Start `tsx service/server.ts` on a fixed loopback port with this environment (plus test
 * defaults: HOST 127.0.0.1, egress to 127.0.0.1/32 allowed, LOG_LEVEL warn). Ready when
 * /healthz answers (the store may still be down). */
export async function startServiceProcess(env: Record<string, string> = {}, port?: number): Promise<ServiceProcess> {
  const p = port ?? (await freePort());
  const lines: string[] = [];
  let child: ChildProcess | undefined;
  const exits: ServiceProcess["exits"] = [];
  let killing = false;
  const keep = (b: Buffer) => {
    for (const l of b.toString("utf8").split("\n")) if (l) lines.push(l);
    if (lines.length > 500) lines.splice(0, lines.length - 500);
  };
  async function start(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const c = spawn(process.execPath, ["--import", "tsx", SERVER_ENTRY], {
      cwd: REPO,
      env: {
        ...process.env,
        NODE_ENV: "production",
        LOG_LEVEL: "warn",
        MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32",
        ...env,
        HOST: "127.0.0.1",
        PORT: String(p),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    c.stdout!.on("data", keep);
    c.stderr!.on("data", keep);
    c.once("exit", (code, signal) => {
      exits.push({ code, signal, killedByTest: killing });
      killing = false;
    });
    const ok = await waitFor(
      async () => {
        if (c.exitCode !== null || c.signalCode !== null) throw new Error("exited");
        const r = await http(p, { target: "/healthz", timeoutMs: 1000 });
        return r?.status === 200;
      },
      45_000,
      100,
    );
    if (!ok || c.exitCode !== null) throw new Error(`mirror-cache did not come up on 127.0.0.1:${p}:\n${lines.slice(-30).join("\n")}`);
  }
  async function kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise<void>((r) => c.once("exit", () => r()));
    killing = true;
    c.kill(signal);
    const t = setTimeout(() => c.kill("SIGKILL"), 15_000);
    await done;
    clearTimeout(t);
  }
  await start();
  return {
    port: p,
    get pid() {
      return child?.pid;
    },
    get alive() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    exits,
    start,
    kill,
    output: () => lines.join("\n"),
    async readyz() {
      const r = await http(p, { target: "/readyz", timeoutMs: 5000 }).catch(() => undefined);
      return r ? { status: r.status, body: r.text } : undefined;
    },
    async metrics() {
      const r = await http(p, { target: "/metrics", timeoutMs: 5000 }).catch(() => undefined);
      return r?.status === 200 ? parseMetrics(r.text) : undefined;
    },
    rss() {
      return child?.pid ? rssOfPid(child.pid) : undefined;
    },
  };
}

export function rssOfPid(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

export class Metrics {
  constructor(readonly samples: Map<string, number>) {}
  /** Sum of every sample of `name` whose labels include `labels`. */
  get(name: string, labels: Record<string, string> = {}): number {
    let sum = 0;
    for (const [k, v] of this.samples) {
      const brace = k.indexOf("{");
      const n = brace < 0 ? k : k.slice(0, brace);
      if (n !== name) continue;
      const ls = brace < 0 ? "" : k.slice(brace);
      if (Object.entries(labels).every(([lk, lv]) => ls.includes(`${lk}="${lv}"`))) sum += v;
    }
    return sum;
  }
  calls(stack: string, outcome: string): number {
    return this.get("mirror_cache_calls_total", { stack, outcome });
  }
}

export function parseMetrics(text: string): Metrics {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    samples.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return new Metrics(samples);
}

/** The stack answers an app saw for one call of a sandbox result (`observed`). */
export function verdicts(summary: { downstream: Array<{ call: string; status: number; body: string }>; observed: Array<{ xMirrorCache: string | null }> } | undefined) {
  return (summary?.downstream ?? []).map((d, i) => ({ call: d.call, status: d.status, body: d.body, cache: summary!.observed[i]?.xMirrorCache ?? null }));
}

export const MiB = 1024 * 1024;

/** The test and mirror stacks' outbound sidecars (the real filter in the emulator), both
 * dispatching to the mirror-cache listening on `cachePort`. */
export async function startOutboundSidecars(cachePort: number, filter: Record<string, unknown> = {}): Promise<{ test: SidecarHandle; mirror: SidecarHandle }> {
  const common = { wasm: WASM_PATH, clusters: { [CACHE_CLUSTER]: `127.0.0.1:${cachePort}` }, routes: {} };
  const test = await startSidecar({ ...common, name: "test-outbound", direction: "outbound", filterConfig: { stack: "test", cache_cluster: CACHE_CLUSTER, ...filter } });
  const mirror = await startSidecar({ ...common, name: "mirror-outbound", direction: "outbound", filterConfig: { stack: "mirror", cache_cluster: CACHE_CLUSTER, ...filter } });
  return { test, mirror };
}

