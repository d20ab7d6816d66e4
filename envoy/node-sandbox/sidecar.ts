// A small HTTP proxy standing in for an Envoy sidecar's outbound listener (or, for the mirror,
// its inbound listener). Every request it gets becomes an HTTP stream in the project's
// proxy-wasm host emulator running the real build/filter.wasm, and the sidecar then does, for
// real and over loopback, what Envoy would do with the filter's decisions:
//
//   httpCall      -> the call to the cache cluster, made with undici to the cluster's address
//                    (Envoy's 504 on timeout, 503 "no healthy upstream" when the connection is
//                    refused, reset -> failHttpCall("reset")), answered with respondToHttpCall;
//   upstream      -> the (possibly modified) request goes to its real destination;
//   localResponse -> the app gets that answer.
// The response then runs through on_response_headers/body and the stream is completed
// (on_log -> on_done -> on_delete), as Envoy's HCM does.
//
// Safety: the sidecar only ever opens connections to 127.0.0.1. Destinations are resolved
// through an address table (like Envoy's clusters / Istio's ServiceEntries): an entry maps the
// authority the app used (e.g. the cloud metadata IP 169.254.169.254) to a local stand-in, while
// the filter still sees the real authority and `destination.address`. An authority that is
// neither in the table nor loopback gets a 503 and no connection at all.
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent } from "undici";
import {
  EmulatorOptions,
  ProxyWasmHost,
  type HttpCall,
  type LocalResponse,
} from "../../test/proxy-wasm-host/index.ts";
import { closeServer, flat, header, headerPairs, HOP_BY_HOP, listen, LOOPBACK, readChunks } from "./net.ts";

type Pairs = Array<[string, string]>;

type Host = ProxyWasmHost;

export interface Route {
  /** Where the sidecar really connects: always `127.0.0.1:<port>`. */
  address: string;
  /** What the filter sees as `destination.address` (defaults to `address`): e.g. the metadata
   * endpoint's real `169.254.169.254:80` while the bytes go to a loopback stand-in. */
  destinationAddress?: string;
}

export interface SidecarOptions {
  name: string;
  direction: "outbound" | "inbound";
  /** Compiled filter (path or bytes). */
  wasm: string | Uint8Array;
  /** The filter's plugin configuration (JSON object or string), as in CONTRACTS.md. */
  filterConfig: object | string;
  /** Envoy cluster name -> `127.0.0.1:<port>` (the cache cluster, like Envoy's cluster config). */
  clusters: Record<string, string>;
  /** Outbound: authority (`host` or `host:port`) -> route. Loopback authorities need no entry. */
  routes?: Record<string, Route>;
  /** Inbound: the local app every request goes to (Istio's inbound cluster). */
  inboundTarget?: string;
  /** PluginConfig.allow_on_headers_stop_iteration (default true; pairs with buffer_bodies). */
  allowOnHeadersStopIteration?: boolean;
  /** VM clones, one per Envoy worker thread (default 2, Istio's usual sidecar concurrency). */
  workers?: number;
  /** Pod labels etc. for `stack: "auto"` (xds.node.metadata). */
  nodeMetadata?: Record<string, unknown>;
  /** Envoy route timeout for the upstream leg (default 15 s, Envoy's default). */
  routeTimeoutMs?: number;
  /** Listener per_connection_buffer_limit_bytes (413 when a buffered body overflows). Default: the
   * emulator's, i.e. Envoy's 1 MiB; startSandbox passes the shipped configs' 2 MiB
   * (SHIPPED_BUFFER_LIMIT_BYTES in sandbox.ts). */
  bufferLimitBytes?: number;
  port?: number;
  log?: (line: string) => void;
}

export interface DispatchRecord {
  cluster: string;
  authority: string;
  path: string;
  method: string;
  stack: string | undefined;
  requestId: string | undefined;
  bodyBytes: number;
  /** `status:<code>` with the `x-mirror-cache` value, or the Envoy failure injected. */
  result: string;
  status?: number;
  xMirrorCache?: string;
}

export type Outcome =
  | "passthrough" // let through with headers unchanged, no dispatch
  | "modified" // let through with changed headers (stack header set, `-shadow` host restored), no dispatch
  | "cache" // dispatched, and the cache's answer went back as a local reply
  | "fail-open" // dispatched, cache failed, request continued to its upstream
  | "refused" // local reply that did not come from the cache (e.g. 503 unavailable)
  | "error"; // the sidecar could not get a decision (filter stalled, VM failed)

export interface RequestRecord {
  id: number;
  requestId: string | undefined;
  method: string;
  authority: string;
  path: string;
  destinationAddress: string;
  /** Where the request went when it was let through (`127.0.0.1:port`), if it was. */
  forwardedTo?: string;
  forwardedHeaders?: Pairs;
  dispatches: DispatchRecord[];
  outcome?: Outcome;
  status?: number;
  xMirrorCache?: string;
  localDetails?: string;
  /** The answer's headers exactly as the filter/emulator produced them (local reply or the
   * response after on_response_*), before the sidecar writes them out as HTTP/1.1. */
  responseHeaders?: Pairs;
}

export interface SidecarStats {
  requests: number;
  outcomes: Record<Outcome, number>;
  /** Cache answers (`x-mirror-cache` of the dispatch response): pass, hit, miss, … */
  cacheAnswers: Record<string, number>;
  /** Local replies by `x-mirror-cache` value (or `(none)`). */
  localReplies: Record<string, number>;
  /** Requests let through, per real address contacted. */
  forwards: Record<string, number>;
  /** Dispatches per Envoy-side failure injected (timeout, no-healthy-upstream, reset). */
  dispatchFailures: Record<string, number>;
  errors: string[];
}

export interface SidecarHandle {
  name: string;
  direction: "outbound" | "inbound";
  port: number;
  address: string;
  stats: SidecarStats;
  records: RequestRecord[];
  /** Sum of a filter counter over every emulator instance of this sidecar. */
  counter(name: string): number;
  logs(level?: number): string[];
  reset(): void;
  stop(): Promise<void>;
}

type Decision =
  | { kind: "upstream" }
  | { kind: "local"; resp: LocalResponse }
  | { kind: "error"; status: number; message: string };

interface StreamCtx {
  s: number;
  entry: HostEntry;
  record: RequestRecord;
  fedHeaders: Pairs;
  decision?: Decision;
  resolve(d: Decision): void;
  decided: Promise<Decision>;
  pendingCalls: number;
  feeding: boolean;
  closed: boolean;
  /** A local reply emitted while the response phase ran. */
  responsePhaseLocal?: LocalResponse;
}

interface HostEntry {
  host: Host;
  destinationAddress: string;
  streams: Map<number, StreamCtx>;
  /** `worker:token` of the calls already taken care of (tokens are per VM). */
  handledTokens: Set<string>;
  active?: StreamCtx;
  next: number;
}

const ENVOY_TIMEOUT = Symbol("envoy-timeout");

function normalizeAuthority(authority: string): { host: string; port: string; key: string } {
  let a = authority.trim().toLowerCase();
  let host = a;
  let port = "80";
  if (a.startsWith("[")) {
    const end = a.indexOf("]");
    host = a.slice(0, end + 1);
    if (a[end + 1] === ":") port = a.slice(end + 2);
  } else {
    const i = a.lastIndexOf(":");
    if (i >= 0 && a.indexOf(":") === i) {
      host = a.slice(0, i);
      port = a.slice(i + 1);
    }
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  a = `${host}:${port}`;
  return { host, port, key: a };
}

function isLoopbackHost(host: string): boolean {
  return host === "127.0.0.1" || host === "localhost" || host === "[::1]";
}

function bump(rec: Record<string, number>, key: string): void {
  rec[key] = (rec[key] ?? 0) + 1;
}

function pairsFromUndici(h: Record<string, string | string[] | undefined>): Pairs {
  const out: Pairs = [];
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push([k.toLowerCase(), x]);
    else out.push([k.toLowerCase(), v]);
  }
  return out;
}

/** Headers for an HTTP/1 request built from an Envoy header map: pseudo-headers become the
 * request line and Host; hop-by-hop headers and content-length (undici sets it) are dropped. */
function toHttp1(headers: Pairs): { method: string; path: string; authority: string; rest: Pairs } {
  let method = "GET";
  let path = "/";
  let authority = "";
  const rest: Pairs = [];
  for (const [k, v] of headers) {
    if (k === ":method") method = v;
    else if (k === ":path") path = v;
    else if (k === ":authority") authority = v;
    else if (k.startsWith(":")) continue;
    else if (HOP_BY_HOP.has(k) || k === "content-length" || k === "host" || k === "expect") continue;
    else rest.push([k, v]);
  }
  return { method, path, authority, rest: [["host", authority], ...rest] };
}

function sameHeaders(a: Pairs, b: Pairs): boolean {
  const norm = (p: Pairs) =>
    p
      .map(([k, v]) => `${k}\u0000${v}`)
      .sort()
      .join("\u0001");
  return norm(a) === norm(b);
}

export async function startSidecar(options: SidecarOptions): Promise<SidecarHandle> {
  const wasmBytes = typeof options.wasm === "string" ? new Uint8Array(readFileSync(options.wasm)) : options.wasm;
  const configuration =
    typeof options.filterConfig === "string" ? options.filterConfig : JSON.stringify(options.filterConfig);
  const log = options.log ?? (() => {});
  const routeTimeoutMs = options.routeTimeoutMs ?? 15_000;
  const routes = new Map<string, Route>();
  for (const [authority, route] of Object.entries(options.routes ?? {})) {
    routes.set(normalizeAuthority(authority).key, route);
  }
  if (options.direction === "inbound" && !options.inboundTarget) {
    throw new Error(`sidecar ${options.name}: an inbound sidecar needs inboundTarget`);
  }
  for (const addr of [...Object.values(options.clusters), ...[...routes.values()].map((r) => r.address)]) {
    if (!normalizeAuthority(addr).key.startsWith(`${LOOPBACK}:`)) {
      throw new Error(`sidecar ${options.name}: ${addr} is not on ${LOOPBACK}; the sandbox never leaves loopback`);
    }
  }

  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
  const stats: SidecarStats = emptyStats();
  const records: RequestRecord[] = [];
  let nextRecord = 0;

  // One emulator instance per destination address: `destination.address` is a host-wide
  // property in the emulator, and Envoy's value differs per connection.
  const hosts = new Map<string, Promise<HostEntry>>();
  const liveHosts: Host[] = [];

  async function createEntry(destinationAddress: string): Promise<HostEntry> {
    let opts = new EmulatorOptions()
      .withWasmBytes(wasmBytes)
      .withPluginConfiguration(configuration)
      .withPluginName(`sandbox.${options.name}`)
      .withClusters(Object.keys(options.clusters))
      .withAllowOnHeadersStopIteration(options.allowOnHeadersStopIteration ?? true)
      .withWorkers(options.workers ?? 2)
      .withProperty(["destination", "address"], destinationAddress);
    if (options.nodeMetadata) opts = opts.withNodeMetadata(options.nodeMetadata);
    if (options.bufferLimitBytes !== undefined) opts = opts.withBufferLimitBytes(options.bufferLimitBytes);
    const host = await ProxyWasmHost.create(opts);
    if (!host.configured) {
      const lines = host.getLogs().join("\n  ");
      throw new Error(`sidecar ${options.name}: the filter refused its configuration ${configuration}\n  ${lines}`);
    }
    const entry: HostEntry = { host, destinationAddress, streams: new Map(), handledTokens: new Set(), next: 0 };
    liveHosts.push(host);
    host.on("httpCall", (call) => onHttpCall(entry, call));
    host.on("upstream", (s) => {
      const ctx = entry.streams.get(s);
      if (ctx && !ctx.decision) decide(ctx, { kind: "upstream" });
    });
    host.on("localResponse", (s, resp) => {
      const ctx = entry.streams.get(s);
      if (!ctx) return;
      if (!ctx.decision) decide(ctx, { kind: "local", resp });
      else if (ctx.decision.kind === "upstream") ctx.responsePhaseLocal = resp;
    });
    return entry;
  }

  function entryFor(destinationAddress: string): Promise<HostEntry> {
    let p = hosts.get(destinationAddress);
    if (!p) {
      p = createEntry(destinationAddress);
      hosts.set(destinationAddress, p);
      p.catch(() => hosts.delete(destinationAddress));
    }
    return p;
  }

  function decide(ctx: StreamCtx, d: Decision): void {
    if (ctx.decision) return;
    ctx.decision = d;
    ctx.resolve(d);
  }

  /** Pick up what the filter did during a synchronous host call even if an event was missed:
   * new dispatches, and the stream's state. */
  function sweep(entry: HostEntry, ctx?: StreamCtx): void {
    for (const call of entry.host.getPendingHttpCalls()) {
      if (!entry.handledTokens.has(`${call.worker}:${call.token}`)) onHttpCall(entry, call);
    }
    if (!ctx || ctx.decision || ctx.feeding || ctx.closed) return;
    const state = entry.host.getStreamState(ctx.s);
    if (state === "upstream" && entry.host.getUpstreamRequest(ctx.s)?.complete) decide(ctx, { kind: "upstream" });
    else if (state === "local-reply") {
      const resp = entry.host.getLocalResponse(ctx.s);
      if (resp) decide(ctx, { kind: "local", resp });
    } else if (state === "paused" && ctx.pendingCalls === 0) {
      decide(ctx, { kind: "error", status: 500, message: "filter paused the request with no call in flight" });
    } else if (state === "closed" || entry.host.failed) {
      decide(ctx, { kind: "error", status: 503, message: `wasm stream ${state}${entry.host.failed ? " (VM failed)" : ""}` });
    }
  }

  function onHttpCall(entry: HostEntry, call: HttpCall): void {
    const key = `${call.worker}:${call.token}`;
    if (entry.handledTokens.has(key)) return;
    entry.handledTokens.add(key);
    const ctx = entry.active;
    if (ctx) ctx.pendingCalls++;
    void performCall(entry, call, ctx);
  }

  async function performCall(entry: HostEntry, call: HttpCall, ctx: StreamCtx | undefined): Promise<void> {
    const h = toHttp1(call.headers);
    const stackHeader = stackHeaderName(configuration);
    const rec: DispatchRecord = {
      cluster: call.cluster,
      authority: h.authority,
      path: h.path,
      method: h.method,
      stack: header(call.headers, stackHeader),
      requestId: header(call.headers, "x-request-id"),
      bodyBytes: call.body.length,
      result: "pending",
    };
    ctx?.record.dispatches.push(rec);
    const target = options.clusters[call.cluster];
    let outcome: { headers: Pairs; body: Uint8Array; trailers: Pairs } | "timeout" | "no-healthy-upstream" | "reset";
    if (!target) {
      outcome = "no-healthy-upstream";
    } else {
      const controller = new AbortController();
      const timer =
        call.timeoutMs > 0 ? setTimeout(() => controller.abort(ENVOY_TIMEOUT), call.timeoutMs) : undefined;
      try {
        const res = await agent.request({
          origin: `http://${target}`,
          path: h.path,
          method: h.method as "GET",
          headers: flat(h.rest),
          body: call.body.length ? Buffer.from(call.body) : undefined,
          signal: controller.signal,
          headersTimeout: 0,
          bodyTimeout: 0,
        });
        const body = new Uint8Array(await res.body.arrayBuffer());
        outcome = {
          headers: [[":status", String(res.statusCode)], ...pairsFromUndici(res.headers)],
          body,
          trailers: pairsFromUndici((res.trailers ?? {}) as Record<string, string>),
        };
      } catch (err) {
        const e = err as { code?: string; cause?: { code?: string } };
        if (controller.signal.aborted && controller.signal.reason === ENVOY_TIMEOUT) outcome = "timeout";
        else if (e.code === "ECONNREFUSED" || e.cause?.code === "ECONNREFUSED" || e.code === "UND_ERR_CONNECT_TIMEOUT")
          outcome = "no-healthy-upstream";
        else outcome = "reset";
      } finally {
        if (timer) clearTimeout(timer);
      }
    }
    if (ctx?.closed) {
      // The downstream went away and the stream was completed; Envoy cancels nothing here (the
      // call belongs to the root context), and the filter must cope with a dead stream.
      log(`${options.name}: dispatch ${call.token} answered after its stream ended`);
    }
    const prevActive = entry.active;
    entry.active = ctx;
    try {
      if (typeof outcome === "string") {
        rec.result = outcome;
        bump(stats.dispatchFailures, outcome);
        entry.host.failHttpCall(call, outcome);
      } else {
        rec.status = Number(outcome.headers[0][1]);
        rec.xMirrorCache = header(outcome.headers, "x-mirror-cache");
        rec.result = `status:${rec.status}`;
        bump(stats.cacheAnswers, rec.xMirrorCache ?? "(none)");
        entry.host.respondToHttpCall(call, outcome);
      }
    } catch (err) {
      stats.errors.push(`${options.name}: respond to dispatch ${call.token}: ${(err as Error).message}`);
    } finally {
      entry.active = prevActive;
      entry.handledTokens.delete(`${call.worker}:${call.token}`); // answered: the VM may reuse nothing, but keep the set small
    }
    if (ctx) {
      ctx.pendingCalls--;
      sweep(entry, ctx);
    } else {
      sweep(entry);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.requests++;
    // :authority from the absolute-form request target, else from Host (Envoy's HCM).
    const rawUrl = req.url ?? "/";
    let authority = req.headers.host ?? "";
    let path = rawUrl;
    if (/^https?:\/\//i.test(rawUrl)) {
      const u = new URL(rawUrl);
      authority = u.host;
      path = `${u.pathname}${u.search}`;
    }
    const incoming = headerPairs(req.rawHeaders).filter(([k]) => !HOP_BY_HOP.has(k) && k !== "host");
    const fedHeaders: Pairs = [
      [":authority", authority],
      [":path", path],
      [":method", req.method ?? "GET"],
      [":scheme", "http"],
      ...incoming,
    ];

    let destinationAddress: string;
    let connectTo: string | undefined;
    if (options.direction === "inbound") {
      destinationAddress = options.inboundTarget!;
      connectTo = options.inboundTarget!;
    } else {
      const n = normalizeAuthority(authority);
      const route = routes.get(n.key) ?? routes.get(n.host);
      if (route) {
        destinationAddress = route.destinationAddress ?? route.address;
        connectTo = route.address;
      } else if (isLoopbackHost(n.host)) {
        destinationAddress = `${LOOPBACK}:${n.port}`;
        connectTo = destinationAddress;
      } else {
        destinationAddress = n.key; // what an original-dst listener would report
        connectTo = undefined; // never contacted
      }
    }

    const record: RequestRecord = {
      id: ++nextRecord,
      requestId: req.headers["x-request-id"] as string | undefined,
      method: req.method ?? "GET",
      authority,
      path,
      destinationAddress,
      dispatches: [],
    };
    records.push(record);

    const chunks = await readChunks(req);
    const trailers = headerPairs(req.rawTrailers);

    let entry: HostEntry;
    try {
      entry = await entryFor(destinationAddress);
    } catch (err) {
      stats.errors.push((err as Error).message);
      return finish(res, record, 500, [["content-type", "text/plain"]], Buffer.from(`sandbox: ${(err as Error).message}`));
    }
    const host = entry.host;
    let resolve!: (d: Decision) => void;
    const decided = new Promise<Decision>((r) => (resolve = r));
    const worker = entry.next++ % (options.workers ?? 2);
    const s = host.initializeHttpContext({ worker });
    const ctx: StreamCtx = {
      s,
      entry,
      record,
      fedHeaders,
      resolve,
      decided,
      pendingCalls: 0,
      feeding: true,
      closed: false,
    };
    entry.streams.set(s, ctx);
    res.once("close", () => {
      if (!res.writableFinished && !ctx.closed) {
        // The app went away: Envoy resets the stream (on_log, on_done, on_delete run).
        ctx.closed = true;
        safe(() => host.resetHttpContext(s));
        release(ctx);
        decide(ctx, { kind: "error", status: 499, message: "client went away" });
      }
    });

    // Feed the stream as Envoy would: headers, body chunks as they arrived, trailers. Decisions
    // taken along the way are recorded; the request is acted on once everything was fed, so a
    // request let through at its headers still carries its whole body.
    entry.active = ctx;
    try {
      const noBody = chunks.length === 0 && trailers.length === 0;
      host.callOnRequestHeaders(s, fedHeaders, noBody);
      sweep(entry);
      for (let i = 0; i < chunks.length; i++) {
        if (ctx.decision?.kind === "local") break;
        host.callOnRequestBody(s, chunks[i], i === chunks.length - 1 && trailers.length === 0);
        sweep(entry);
      }
      if (trailers.length && ctx.decision?.kind !== "local") {
        host.callOnRequestTrailers(s, trailers);
        sweep(entry);
      }
    } catch (err) {
      decide(ctx, { kind: "error", status: 500, message: `emulator: ${(err as Error).message}` });
    } finally {
      entry.active = undefined;
      ctx.feeding = false;
    }
    sweep(entry, ctx);

    const decision = await ctx.decided;
    if (ctx.closed) return;
    if (decision.kind === "local") {
      record.outcome = record.dispatches.some((d) => d.xMirrorCache !== undefined) ? "cache" : "refused";
      const resp = decision.resp;
      record.localDetails = resp.details;
      record.responseHeaders = resp.headers;
      record.xMirrorCache = header(resp.headers, "x-mirror-cache");
      bump(stats.localReplies, record.xMirrorCache ?? "(none)");
      completeStream(ctx);
      return finish(res, record, resp.statusCode, resp.headers, Buffer.from(resp.body));
    }
    if (decision.kind === "error") {
      record.outcome = "error";
      stats.errors.push(`${options.name} ${record.method} ${authority}${path}: ${decision.message}`);
      completeStream(ctx);
      return finish(
        res,
        record,
        decision.status,
        [["content-type", "text/plain"], ["x-sandbox-error", "filter"]],
        Buffer.from(`sandbox sidecar: ${decision.message}`),
      );
    }

    // Let through: the request as the filter left it.
    const up = host.getUpstreamRequest(s);
    const upHeaders = up?.headers ?? fedHeaders;
    const upBody = up ? Buffer.from(up.body) : Buffer.concat(chunks);
    record.forwardedHeaders = upHeaders;
    if (record.dispatches.length) record.outcome = "fail-open";
    else record.outcome = sameHeaders(upHeaders, fedHeaders) ? "passthrough" : "modified";

    const h = toHttp1(upHeaders);
    let status: number;
    let respHeaders: Pairs;
    let respBody: Buffer;
    let respTrailers: Pairs = [];
    if (!connectTo) {
      status = 503;
      respHeaders = [["content-type", "text/plain"]];
      respBody = Buffer.from(`sandbox: no route to ${authority}; the sandbox never leaves ${LOOPBACK}`);
    } else {
      record.forwardedTo = connectTo;
      bump(stats.forwards, connectTo);
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(ENVOY_TIMEOUT), routeTimeoutMs);
      try {
        const r = await agent.request({
          origin: `http://${connectTo}`,
          path: h.path,
          method: h.method as "GET",
          headers: flat(h.rest),
          body: upBody.length ? upBody : undefined,
          signal: controller.signal,
          headersTimeout: 0,
          bodyTimeout: 0,
        });
        respBody = Buffer.from(await r.body.arrayBuffer());
        status = r.statusCode;
        respHeaders = pairsFromUndici(r.headers);
        respTrailers = pairsFromUndici((r.trailers ?? {}) as Record<string, string>);
      } catch (err) {
        // Envoy's own local replies for a failed upstream leg.
        const e = err as { code?: string; cause?: { code?: string } };
        respHeaders = [["content-type", "text/plain"]];
        if (controller.signal.reason === ENVOY_TIMEOUT) {
          status = 504;
          respBody = Buffer.from("upstream request timeout");
        } else if (e.code === "ECONNREFUSED" || e.cause?.code === "ECONNREFUSED") {
          status = 503;
          respBody = Buffer.from(
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
          );
        } else {
          status = 503;
          respBody = Buffer.from(
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
          );
        }
      } finally {
        clearTimeout(timer);
      }
    }
    if (ctx.closed) return;

    // Response phase through the filter; Envoy ends the stream (log -> done -> delete) once the
    // response reached the client.
    try {
      const hdrs: Pairs = [[":status", String(status)], ...respHeaders.filter(([k]) => !HOP_BY_HOP.has(k))];
      const eosAtHeaders = respBody.length === 0 && respTrailers.length === 0;
      host.callOnResponseHeaders(s, hdrs, eosAtHeaders);
      if (respBody.length) host.callOnResponseBody(s, respBody, respTrailers.length === 0);
      if (respTrailers.length) host.callOnResponseTrailers(s, respTrailers);
    } catch (err) {
      stats.errors.push(`${options.name}: response phase: ${(err as Error).message}`);
    }
    const down = host.getDownstreamResponse(s);
    if (ctx.responsePhaseLocal) record.xMirrorCache = header(ctx.responsePhaseLocal.headers, "x-mirror-cache");
    completeStream(ctx);
    if (down?.complete) {
      record.responseHeaders = down.headers;
      const st = Number(header(down.headers, ":status") ?? status);
      return finish(res, record, st, down.headers, Buffer.from(down.body));
    }
    stats.errors.push(`${options.name} ${record.method} ${authority}${path}: the filter held the response (${host.getStreamState(s)})`);
    return finish(res, record, 500, [["content-type", "text/plain"], ["x-sandbox-error", "filter"]], Buffer.from("sandbox sidecar: the filter held the response"));
  }

  /** Envoy completes a stream itself once the response reached the client (a no-op then);
   * for a stream the sidecar gives up on, this runs on_log/on_done/on_delete. */
  function completeStream(ctx: StreamCtx): void {
    if (ctx.closed) return;
    ctx.closed = true;
    safe(() => ctx.entry.host.completeHttpContext(ctx.s));
    release(ctx);
  }

  function release(ctx: StreamCtx): void {
    ctx.entry.streams.delete(ctx.s);
    safe(() => ctx.entry.host.releaseHttpContext(ctx.s));
  }

  function safe(f: () => void): void {
    try {
      f();
    } catch (err) {
      stats.errors.push(`${options.name}: ${(err as Error).message}`);
    }
  }

  function finish(res: ServerResponse, record: RequestRecord, status: number, headers: Pairs, body: Buffer): void {
    record.status = status;
    bump(stats.outcomes as unknown as Record<string, number>, record.outcome ?? "error");
    if (res.destroyed) return;
    const out = headers.filter(([k]) => !k.startsWith(":") && !HOP_BY_HOP.has(k) && k !== "content-length");
    out.push(["content-length", String(body.length)]);
    res.writeHead(status, flat(out));
    res.end(body);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      stats.errors.push(`${options.name}: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`sandbox sidecar crashed: ${(err as Error).message}`);
      } else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;

  // Validate the configuration up front (Envoy's canary VM refuses a bad config at load).
  if (options.direction === "inbound") await entryFor(options.inboundTarget!);
  else for (const r of routes.values()) await entryFor(r.destinationAddress ?? r.address);

  const port = await listen(server, options.port ?? 0);
  log(`${options.name}: listening on ${LOOPBACK}:${port} (${options.direction})`);

  return {
    name: options.name,
    direction: options.direction,
    port,
    address: `${LOOPBACK}:${port}`,
    stats,
    records,
    counter(name: string) {
      let sum = 0;
      for (const h of liveHosts) {
        try {
          sum += h.getCounterValue(name) ?? 0;
        } catch {
          /* unknown counter */
        }
      }
      return sum;
    },
    logs(level?: number) {
      return liveHosts.flatMap((h) => h.getLogs(level));
    },
    reset() {
      Object.assign(stats, emptyStats());
      records.length = 0;
    },
    async stop() {
      await closeServer(server);
      await agent.close().catch(() => {});
    },
  };

}

function emptyStats(): SidecarStats {
  return {
    requests: 0,
    outcomes: { passthrough: 0, "modified": 0, cache: 0, "fail-open": 0, refused: 0, error: 0 },
    cacheAnswers: {},
    localReplies: {},
    forwards: {},
    dispatchFailures: {},
    errors: [],
  };
}

function stackHeaderName(configuration: string): string {
  try {
    const c = JSON.parse(configuration) as { stack_header?: unknown };
    if (typeof c.stack_header === "string") return c.stack_header.toLowerCase();
  } catch {
    /* the filter reports bad configurations */
  }
  return "x-mirror-stack";
}
