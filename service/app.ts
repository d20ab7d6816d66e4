// buildApp(options): the mirror-cache Fastify instance. One catch-all route for every method and
// URL; the request is classified (probe / invalid / test / mirror) and handed to the handler for
// its stack. The mirror handler is built without the forwarder, so a mirror call has no way to
// reach an upstream.
import { promises as dns } from "node:dns";
import { createServer, maxHeaderSize, METHODS, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyInstance } from "fastify";
import pino, { type Logger } from "pino";
import { sendError, OUTCOME, type Call, type HandlerDeps } from "./call.ts";
import type { Config } from "./config.ts";
import { EgressPolicy, normalizeHost, parseIp, selfAddresses, type Connector, type ResolvedAddress, type Resolver, type SelfAddress } from "./egress.ts";
import { errorBody, rawErrorResponse, type ErrorCode } from "./errors.ts";
import { createForwarder, type Forwarder } from "./forward.ts";
import { createMirrorHandler } from "./handle-mirror-call.ts";
import { createTestHandler } from "./handle-test-call.ts";
import { clientSpiffe, stackForIdentity } from "./identity.ts";
import { callTuple, stripQuery } from "./key.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import type { CacheStore, Stack } from "./store/types.ts";

export interface AppOptions {
  /** From `loadConfig()`. */
  config: Readonly<Config>;
  store: CacheStore;
  /** pino logger; default: a new one at `config.logLevel` on stdout. */
  logger?: Logger;
  /** Name → addresses for upstream names; default `dns.lookup(name, { all: true })`. */
  resolver?: Resolver;
  /** Socket-level connector (undici `connect` function), only ever handed checked IPs. */
  connector?: Connector;
  /** Register prom-client's process metrics (off in tests: several apps per process). */
  defaultMetrics?: boolean;
}

export interface MirrorCacheApp extends FastifyInstance {
  readonly metrics: Metrics;
  readonly mirrorCacheConfig: Readonly<Config>;
}

const STORE_METHODS = ["sequence", "begin", "claim", "release", "put", "get", "wait", "ping", "stats", "close"] as const;
const PROBES = new Set(["/healthz", "/readyz", "/metrics"]);
const AUTHORITY_RE = /^(?:\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+;=-]+)(?::\d{1,5})?$/;
const READY_TIMEOUT_MS = 2_000;

function validateOptions(o: AppOptions): Readonly<AppOptions> {
  const problems: string[] = [];
  if (!o || typeof o !== "object") throw new TypeError("buildApp(options): options must be an object");
  if (!o.config || typeof o.config !== "object" || !Object.isFrozen(o.config) || typeof o.config.stackHeader !== "string")
    problems.push("options.config must be the frozen object returned by loadConfig()");
  if (!o.store || typeof o.store !== "object") problems.push("options.store must be a CacheStore");
  else for (const m of STORE_METHODS) if (typeof (o.store as unknown as Record<string, unknown>)[m] !== "function") problems.push(`options.store.${m} must be a function (CacheStore)`);
  if (o.resolver !== undefined && typeof o.resolver !== "function") problems.push("options.resolver must be a function (hostname) => Promise<{address, family}[]>");
  if (o.connector !== undefined && typeof o.connector !== "function") problems.push("options.connector must be an undici connect function (options, callback)");
  if (o.logger !== undefined && (typeof o.logger !== "object" || typeof o.logger.warn !== "function")) problems.push("options.logger must be a pino logger");
  if (problems.length > 0) throw new TypeError(`buildApp(options):\n  - ${problems.join("\n  - ")}`);
  return Object.freeze({ ...o });
}

export const defaultResolver: Resolver = async (hostname) => {
  const addrs = await dns.lookup(hostname, { all: true, verbatim: true });
  return addrs.map((a) => ({ address: a.address, family: a.family as 4 | 6 }) satisfies ResolvedAddress);
};

function httpsMatcher(hosts: readonly string[]): (host: string) => boolean {
  const exact = new Set(hosts.filter((h) => !h.startsWith("*.")));
  const suffixes = hosts.filter((h) => h.startsWith("*.")).map((h) => h.slice(1));
  if (exact.size === 0 && suffixes.length === 0) return () => false;
  return (host) => exact.has(host) || suffixes.some((s) => host.endsWith(s));
}

export async function buildApp(options: AppOptions): Promise<MirrorCacheApp> {
  const opts = validateOptions(options);
  const { config, store } = opts;
  const log: Logger = opts.logger ?? pino({ level: config.logLevel, base: { service: "mirror-cache" } });
  const debug = log.isLevelEnabled("debug");
  const metrics = createMetrics(store, { defaultMetrics: opts.defaultMetrics });

  const app = Fastify({
    logger: false,
    // Calls arriving during the drain get our own 503 SHUTTING_DOWN (see `closing`).
    return503OnClosing: false,
    forceCloseConnections: "idle",
    keepAliveTimeout: 65_000,
    exposeHeadRoutes: false,
    bodyLimit: Math.max(1, config.maxBodyBytes),
    // For `inject()` (served requests never meet the router, see serverFactory): the router
    // decodes the path to match routes; the service never does (the path is forwarded and keyed
    // as received), so a path it cannot decode (`/%`, `/a%zz`) is a call like any other. Any
    // other framework error gets the catalogue's BAD_REQUEST.
    frameworkErrors: (err, request, reply) => {
      if ((err as { code?: string }).code === "FST_ERR_BAD_URL") return route(request, reply);
      badRequest(reply.raw, err);
    },
    // Errors of Node's HTTP parser (header too large, malformed framing, timeouts), before any
    // request exists: answered with the catalogue's JSON on the socket, then the socket is closed.
    clientErrorHandler: (err, socket) => clientError(err, socket),
    // Every request on the server goes straight to `dispatch`, not through Fastify's router:
    // the service has one catch-all route that hijacks its reply, so the router and Fastify's
    // Request and Reply objects were only per-call cost. The route stays registered for
    // `inject()`, which calls Fastify's handler, not the server's; both end in `dispatch`.
    // Server timeouts are set as Fastify sets them on a server it creates.
    serverFactory: (_fastifyHandler, opts) => {
      // Fastify's options with its defaults filled in.
      const o = opts as { keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number; maxRequestsPerSocket: number | null };
      const server = createServer((req, res) => dispatch(req, res));
      server.keepAliveTimeout = o.keepAliveTimeout;
      server.requestTimeout = o.requestTimeout;
      server.setTimeout(o.connectionTimeout);
      if (o.maxRequestsPerSocket) server.maxRequestsPerSocket = o.maxRequestsPerSocket;
      return server;
    },
  });

  // The service's own address, for the "never forward to myself" rule; known once listening.
  let self: SelfAddress | undefined;
  const selfNow = (): SelfAddress | undefined => {
    if (self) return self;
    const addr = app.server.address() as AddressInfo | null;
    if (addr && typeof addr === "object") self = selfAddresses(config.host || addr.address, addr.port);
    return self;
  };
  const policy = new EgressPolicy({ allow: config.egressAllow, deny: config.egressDeny, allowOnly: config.egressAllowOnly }, selfNow);
  const forwarder: Forwarder = createForwarder({
    config,
    policy,
    resolver: opts.resolver ?? defaultResolver,
    connector: opts.connector,
    onDenied: (reason) => log.warn({ reason }, "egress denied"),
    bodyBuffer: store.bodyBuffer?.bind(store),
  });

  const base: HandlerDeps = { store, metrics, log, debug, ttlMs: config.ttlMs, maxBodyBytes: config.maxBodyBytes };
  const testCall = createTestHandler({
    ...base,
    forwarder,
    stackHeader: config.stackHeader,
    claimTtlMs: config.connectTimeoutMs + 2 * config.upstreamTimeoutMs + 1_000,
  });
  const mirrorCall = createMirrorHandler({ ...base, waitMs: config.waitMs });

  const { stackHeader, requestIdHeader } = config;
  const testValue = config.stackValues.test;
  const mirrorValue = config.stackValues.mirror;
  const identityRules = config.identity;
  const isHttps = httpsMatcher(config.httpsHosts);
  const ignoreQuery = config.keyIgnoreQuery.length > 0 ? new Set(config.keyIgnoreQuery) : null;

  function reject(res: ServerResponse, stack: Stack | "none", code: ErrorCode, message: string): void {
    metrics.call(stack, OUTCOME[code]);
    if (debug) log.debug({ stack, code, message }, "call refused");
    sendError(res, code, message);
  }

  async function probe(path: string, res: ServerResponse): Promise<void> {
    if (path === "/healthz") {
      const body = Buffer.from(JSON.stringify({ status: "ok" }));
      res.writeHead(200, ["content-type", "application/json", "content-length", String(body.length)]);
      res.end(body);
    } else if (path === "/readyz") {
      let body: Buffer;
      let status = 200;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          store.ping(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
          }),
        ]);
        body = Buffer.from(JSON.stringify({ status: "ready", store: store.kind }));
      } catch (err) {
        status = 503;
        body = errorBody("STORE_UNAVAILABLE", `the ${store.kind} store is not reachable: ${(err as Error).message}`);
        log.warn({ err: (err as Error).message }, "readiness: store unreachable");
      } finally {
        clearTimeout(timer);
      }
      res.writeHead(status, ["content-type", "application/json", "content-length", String(body.length)]);
      res.end(body);
    } else {
      const text = await metrics.registry.metrics();
      res.writeHead(200, ["content-type", metrics.registry.contentType, "content-length", String(Buffer.byteLength(text))]);
      res.end(text);
    }
  }

  /** Set when app.close() starts: new calls are refused while in-flight ones drain. */
  let closing = false;
  let idleSweep: NodeJS.Timeout | undefined;
  app.addHook("preClose", (done) => {
    closing = true;
    // server.close() closes the connections idle at that moment; keep closing the ones that
    // become idle once their in-flight call is answered, so the drain doesn't wait for
    // keep-alive timeouts.
    idleSweep = setInterval(() => app.server.closeIdleConnections(), 100);
    idleSweep.unref();
    done();
  });

  /** Classify and dispatch one request. Synchronous up to the handler's first await. */
  function handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    const headers = req.headers;
    const url = req.url ?? "/";
    if (closing && url !== "/healthz") {
      metrics.call("none", "shutting_down");
      return sendError(res, "SHUTTING_DOWN", "mirror-cache is shutting down; retry on another replica", true);
    }
    const stackRaw = headers[stackHeader];
    let stack: Stack | undefined;
    if (stackRaw === testValue) stack = "test";
    else if (stackRaw === mirrorValue) stack = "mirror";
    else if (stackRaw !== undefined)
      return reject(res, "none", "INVALID_STACK", `${stackHeader} is ${JSON.stringify(stackRaw)}; it must be exactly one of ${JSON.stringify(testValue)} (test) or ${JSON.stringify(mirrorValue)} (mirror)`);

    if (identityRules.length > 0) {
      const xfcc = headers["x-forwarded-client-cert"];
      const id = typeof xfcc === "string" ? clientSpiffe(xfcc) : null;
      const idStack = id ? stackForIdentity(identityRules, id) : undefined;
      if (id && idStack) {
        if (stack !== undefined && stack !== idStack)
          return reject(res, stack, "INVALID_STACK", `${stackHeader} says ${stack} but the caller's identity ${id.uri} maps to the ${idStack} stack (MIRROR_CACHE_IDENTITY)`);
        if (stack === undefined && !PROBES.has(url)) stack = idStack;
      }
    }
    if (stack === undefined) {
      if (PROBES.has(url) && stackRaw === undefined) return probe(url, res);
      return reject(res, "none", "INVALID_STACK", `missing ${stackHeader} header; send ${stackHeader}: ${testValue} or ${mirrorValue}`);
    }

    const requestId = headers[requestIdHeader];
    if (typeof requestId !== "string" || requestId.length === 0)
      return reject(res, stack, "INVALID_REQUEST_ID", `missing or empty ${requestIdHeader} header; it is the pairing key of test and mirror calls`);
    if (requestId.length > 1024) return reject(res, stack, "INVALID_REQUEST_ID", `${requestIdHeader} is longer than 1024 characters`);

    const hostHeader = headers.host;
    if (typeof hostHeader !== "string" || hostHeader.length === 0)
      return reject(res, stack, "INVALID_AUTHORITY", "missing Host header; it must name the real upstream (host[:port])");
    let authority = hostHeader.toLowerCase();
    if (!AUTHORITY_RE.test(authority) || authority.length > 261)
      return reject(res, stack, "INVALID_AUTHORITY", `Host ${JSON.stringify(hostHeader)} is not a host[:port]`);
    // host / port split (IPv6 literals are bracketed)
    let hostname: string;
    let port = "";
    const close = authority.lastIndexOf("]");
    const colon = authority.lastIndexOf(":");
    if (colon > close) {
      hostname = authority.slice(0, colon);
      port = authority.slice(colon + 1);
      const p = Number(port);
      if (!(p >= 1 && p <= 65535)) return reject(res, stack, "INVALID_AUTHORITY", `Host ${JSON.stringify(hostHeader)} has an invalid port`);
    } else hostname = authority;
    if (hostname.endsWith(".")) {
      hostname = hostname.slice(0, -1);
      authority = port ? `${hostname}:${port}` : hostname;
    }
    if (hostname.length === 0 || (hostname.startsWith("[") && !parseIp(hostname)))
      return reject(res, stack, "INVALID_AUTHORITY", `Host ${JSON.stringify(hostHeader)} is not a host[:port]`);

    if (url.charCodeAt(0) !== 47 /* / */ && url !== "*")
      return reject(res, stack, "INVALID_AUTHORITY", `request target ${JSON.stringify(url.slice(0, 200))} must be a path (origin-form); name the upstream in Host`);

    // Only a test call is forwarded: a mirror call skips the https match and the origin string.
    let origin = "";
    if (stack === "test") {
      const https = isHttps(normalizeHost(hostname));
      origin = https ? `https://${hostname}:${port || "443"}` : port ? `http://${authority}` : `http://${hostname}:80`;
    }
    const method = req.method ?? "GET";
    const call: Call = {
      stack,
      requestId,
      method,
      authority,
      path: url,
      tuple: callTuple(requestId, method, authority, ignoreQuery ? stripQuery(url, ignoreQuery) : url),
      origin,
      req,
      res,
    };
    return stack === "mirror" ? mirrorCall(call) : testCall(call);
  }

  // Bodies are not parsed: a test call streams its body to the upstream, a mirror call's body
  // is discarded (Node drains it after the answer).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));
  for (const m of METHODS) {
    if (m === "CONNECT" || app.supportedMethods.includes(m)) continue;
    try {
      app.addHttpMethod(m, { hasBody: true });
    } catch {
      // a method this Fastify refuses stays unsupported (answered by the not-found handler)
    }
  }

  /** One request, from the server's listener or from the Fastify route (`inject()`). */
  function dispatch(req: IncomingMessage, res: ServerResponse): void {
    let p: Promise<void> | void;
    try {
      p = handle(req, res);
    } catch (err) {
      return internalError(res, err);
    }
    if (p) p.catch((err) => internalError(res, err));
  }
  const route = (request: { raw: IncomingMessage }, reply: { hijack(): void; raw: ServerResponse }): void => {
    reply.hijack();
    dispatch(request.raw, reply.raw);
  };
  function internalError(res: ServerResponse, err: unknown): void {
    metrics.call("none", "internal_error");
    log.error({ err }, "unexpected error while handling a call");
    try {
      sendError(res, "INTERNAL_ERROR", "internal error; see the service log");
    } catch {
      res.destroy();
    }
  }
  app.route({ method: app.supportedMethods, url: "*", handler: route });
  app.setNotFoundHandler(route);
  function badRequest(res: ServerResponse, err: unknown): void {
    const e = err as { code?: string; message?: string };
    metrics.call("none", "bad_request");
    log.warn({ err: e.message, code: e.code }, "bad request");
    sendError(res, "BAD_REQUEST", `${e.code ?? "bad request"}: ${e.message}`, true);
  }
  app.setErrorHandler((err, request, reply) => {
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    reply.hijack();
    if (status >= 400 && status < 500) badRequest(reply.raw, err);
    else internalError(reply.raw, err);
    void request;
  });
  function clientError(err: Error & { code?: string }, socket: Duplex): void {
    // A reset connection has no one to answer (Node's own handler skips it too).
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    let code: ErrorCode = "BAD_REQUEST";
    let message = `the request could not be read as HTTP/1.1 (${err.code ?? "parse error"}): ${err.message}`;
    if (err.code === "HPE_HEADER_OVERFLOW") {
      code = "HEADERS_TOO_LARGE";
      message = `the request line and headers are over the server's limit (${maxHeaderSize} bytes)`;
    } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      code = "REQUEST_TIMEOUT";
      message = "the request headers or body were not received in time";
    } else if (err.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW") {
      code = "BODY_TOO_LARGE";
      message = "the request body's chunk extensions are over the server's limit";
    }
    metrics.call("none", OUTCOME[code]);
    log.warn({ err: err.message, code: err.code }, "unreadable request");
    // As Node does: answer only if no response is under way on this connection (else the answer
    // would be spliced into it), then close.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
    if (socket.writable && (!inFlight || !inFlight.headersSent)) socket.write(rawErrorResponse(code, message));
    socket.destroy(err);
  }

  app.addHook("onClose", async () => {
    clearInterval(idleSweep);
    await forwarder.close();
  });

  Object.defineProperty(app, "metrics", { value: metrics, enumerable: false });
  Object.defineProperty(app, "mirrorCacheConfig", { value: config, enumerable: false });
  return app as unknown as MirrorCacheApp;
}
