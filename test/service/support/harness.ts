// Test harness for the service: real HTTP upstreams on 127.0.0.1, the real memory store, the app
// listening on 127.0.0.1, and a plain node:http client that sends exactly the headers it is given.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type AddressInfo } from "node:net";
import pino from "pino";
import { buildApp, type AppOptions, type MirrorCacheApp } from "../../../service/app.ts";
import { loadConfig, type Config } from "../../../service/config.ts";
import { createMemoryStore } from "../../../service/store/memory.ts";
import type { CacheStore } from "../../../service/store/types.ts";
import { freePort } from "../../support/redis-server.ts";

export interface Upstream {
  port: number;
  /** host:port for the Host header. */
  authority: string;
  /** Requests received, in order. */
  seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; rawHeaders: string[]; body: Buffer }>;
  server: Server;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export async function startUpstream(handler: UpstreamHandler = (_q, res) => res.end("ok")): Promise<Upstream> {
  const seen: Upstream["seen"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    authority: `127.0.0.1:${port}`,
    seen,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Service {
  app: MirrorCacheApp;
  store: CacheStore;
  config: Readonly<Config>;
  port: number;
  close(): Promise<void>;
}

export const SILENT = pino({ level: "silent" });

export function testConfig(env: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({ MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32", LOG_LEVEL: "silent", HOST: "127.0.0.1", PORT: "0", ...env });
}

export async function startService(
  env: Record<string, string> = {},
  extra: Partial<Omit<AppOptions, "config">> = {},
): Promise<Service> {
  const config = testConfig(env);
  const store = extra.store ?? createMemoryStore({ maxBytes: config.maxBytes });
  const app = await buildApp({ logger: SILENT, ...extra, config, store });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const port = (app.server.address() as AddressInfo).port;
  return {
    app,
    store,
    config,
    port,
    close: async () => {
      await app.close();
      await store.close();
    },
  };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
  json(): { code: string; message: string } & Record<string, unknown>;
}

export interface SendOptions {
  method?: string;
  path?: string;
  /** Host header; omitted: 127.0.0.1:port. */
  host?: string;
  stack?: string;
  rid?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer | AsyncIterable<Buffer>;
}

/** One request to 127.0.0.1:port with exactly these headers (no agent keep-alive surprises). */
export function send(port: number, o: SendOptions = {}): Promise<Answer> {
  const headers: Record<string, string | string[]> = { ...(o.headers ?? {}) };
  if (o.host !== undefined) headers.host = o.host;
  if (o.stack !== undefined) headers["x-mirror-stack"] = o.stack;
  if (o.rid !== undefined) headers["x-request-id"] = o.rid;
  if (typeof o.body === "string" || Buffer.isBuffer(o.body)) headers["content-length"] ??= String(Buffer.byteLength(o.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, method: o.method ?? "GET", path: o.path ?? "/", headers, agent: false, setHost: o.host === undefined },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body,
            text: body.toString(),
            json: () => JSON.parse(body.toString()),
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (o.body === undefined) req.end();
    else if (typeof o.body === "string" || Buffer.isBuffer(o.body)) req.end(o.body);
    else {
      const it = o.body;
      (async () => {
        for await (const c of it) req.write(c);
        req.end();
      })().catch((e) => req.destroy(e));
    }
  });
}

/** GETs of `paths` pipelined on one raw connection that reads nothing until `finish()`, the last
 * with `Connection: close`: the answers pile up in the kernel and then in the service.
 * `finish()` reads to the end and splits the answers by their content-length. */
export function pausedCalls(port: number, o: { host: string; stack: string; calls: ReadonlyArray<{ rid: string; path: string }> }): { finish(): Promise<Array<{ head: string; body: Buffer }>> } {
  const sock = connect(port, "127.0.0.1");
  sock.pause();
  const chunks: Buffer[] = [];
  sock.on("data", (c: Buffer) => chunks.push(c));
  const last = o.calls.length - 1;
  sock.write(o.calls.map((c, i) => `GET ${c.path} HTTP/1.1\r\nHost: ${o.host}\r\nx-mirror-stack: ${o.stack}\r\nx-request-id: ${c.rid}\r\n${i === last ? "Connection: close\r\n" : ""}\r\n`).join(""));
  return {
    async finish() {
      const ended = new Promise((r) => sock.once("end", r));
      sock.resume();
      await ended;
      return splitAnswers(Buffer.concat(chunks));
    },
  };
}

/** HTTP/1.1 answers read off a raw connection, split by their content-length. */
export function splitAnswers(raw: Buffer): Array<{ head: string; body: Buffer }> {
  const out: Array<{ head: string; body: Buffer }> = [];
  let at = 0;
  while (at < raw.length) {
    const headEnd = raw.indexOf("\r\n\r\n", at);
    if (headEnd < 0) throw new Error(`an incomplete head at byte ${at}`);
    const head = raw.subarray(at, headEnd).toString("latin1");
    const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
    if (!Number.isInteger(len)) throw new Error(`an answer without content-length at byte ${at}`);
    out.push({ head, body: raw.subarray(headEnd + 4, headEnd + 4 + len) });
    at = headEnd + 4 + len;
  }
  return out;
}

let ridCounter = 0;
export function rid(prefix = "rid"): string {
  return `${prefix}-${process.pid}-${Date.now()}-${++ridCounter}`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** The first line of the server's stdout (its pino log) that matches `re`, waited for. */
  line(re: RegExp, ms?: number): Promise<string>;
}

/** `service/server.ts` in a process of its own on 127.0.0.1 (the memory store), with `env`
 * on top of this process's environment; resolves once it logs that it listens. */
export async function spawnServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "service/server.ts"], {
    cwd: new URL("../../..", import.meta.url).pathname,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const line = (re: RegExp, ms = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const t0 = Date.now();
      const look = () => {
        const found = out.split("\n").find((l) => re.test(l));
        if (found !== undefined) return resolve(found);
        if (Date.now() - t0 > ms || child.exitCode !== null) return reject(new Error(`no line matching ${re} within ${ms} ms; output: ${out}`));
        setTimeout(look, 20);
      };
      look();
    });
  await line(/mirror-cache listening/);
  return { child, port, line };
}
