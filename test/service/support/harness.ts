// Test harness for the service: real HTTP upstreams on 127.0.0.1, the real memory store, the app
// listening on 127.0.0.1, and a plain node:http client that sends exactly the headers it is given.
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { buildApp, type AppOptions, type MirrorCacheApp } from "../../../service/app.ts";
import { loadConfig, type Config } from "../../../service/config.ts";
import { createMemoryStore } from "../../../service/store/memory.ts";
import type { CacheStore } from "../../../service/store/types.ts";

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

let ridCounter = 0;
export function rid(prefix = "rid"): string {
  return `${prefix}-${process.pid}-${Date.now()}-${++ridCounter}`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
