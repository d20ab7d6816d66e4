// Root and stream contexts, and the per-VM registry that maps host context ids to them.
// Envoy creates several root contexts in one VM (one per plugin × traffic direction), so
// roots are keyed by id like streams; each root holds its own configuration.
import { proxy_close_stream, proxy_continue_stream, proxy_done } from "./imports";
import { HttpCallOwners, httpCall, httpCallPairs } from "./http-call";
import { sendLocalResponse, sendLocalResponsePairs } from "./local-response";
import { Header } from "./pairs";
import { getPropertyString } from "./properties";
import { DataAction, HeadersAction, Result, StreamType, TrailersAction, WasmResult } from "./status";

export class RootContext {
  /** Outstanding HTTP calls dispatched by this root or its streams. */
  readonly httpCalls: HttpCallOwners = new HttpCallOwners();

  constructor(readonly id: u32) {}

  onVmStart(vmConfigurationSize: u32): bool { return true; }

  /** Read the configuration with getBufferBytes(BufferType.PluginConfiguration, 0, size).
   * Returning false rejects it (Envoy refuses the plugin). */
  onConfigure(configurationSize: u32): bool { return true; }

  /** Return false to finish later, then call `done()`. */
  onDone(): bool { return true; }

  onDelete(): void {}

  /** Response to a call this root dispatched itself (streams get their own). */
  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {}

  /** The stream context for a new HTTP stream of this plugin. */
  createStream(id: u32): StreamContext {
    return new StreamContext(id, this);
  }

  httpCall(cluster: string, headers: Header[], body: ArrayBuffer, trailers: Header[], timeoutMs: u32): Result<u32> {
    const r = httpCall(cluster, headers, body, trailers, timeoutMs);
    if (r.ok) this.httpCalls.add(r.value, this.id);
    return r;
  }
}

export class StreamContext {
  /** Set at on_done/on_delete: the stream is over, late HTTP-call responses are dropped. */
  finished: bool = false;
  /** send_local_response was called: a second call would leave the request hanging. */
  localResponseSent: bool = false;

  constructor(readonly id: u32, readonly root: RootContext) {}

  onRequestHeaders(headerCount: u32, endOfStream: bool): HeadersAction { return HeadersAction.Continue; }
  onRequestBody(bodySize: u32, endOfStream: bool): DataAction { return DataAction.Continue; }
  onRequestTrailers(trailerCount: u32): TrailersAction { return TrailersAction.Continue; }
  onResponseHeaders(headerCount: u32, endOfStream: bool): HeadersAction { return HeadersAction.Continue; }
  onResponseBody(bodySize: u32, endOfStream: bool): DataAction { return DataAction.Continue; }
  onResponseTrailers(trailerCount: u32): TrailersAction { return TrailersAction.Continue; }
  /** Response to a call this stream dispatched; only delivered while the stream is alive. */
  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {}
  /** Envoy calls on_log before on_done; the spec says after. Do not depend on the order. */
  onLog(): void {}
  onDone(): void {}
  onDelete(): void {}

  /** Dispatches on the root context and routes the response back to this stream. */
  httpCall(cluster: string, headers: Header[], body: ArrayBuffer, trailers: Header[], timeoutMs: u32): Result<u32> {
    const r = httpCall(cluster, headers, body, trailers, timeoutMs);
    if (r.ok) this.root.httpCalls.add(r.value, this.id);
    return r;
  }

  /** httpCall with serialized headers/trailers (http-call.ts httpCallPairs). */
  httpCallPairs(
    cluster: ArrayBuffer, headersPtr: usize, headersSize: usize, bodyPtr: usize, bodySize: usize,
    trailersPtr: usize, trailersSize: usize, timeoutMs: u32,
  ): Result<u32> {
    const r = httpCallPairs(cluster, headersPtr, headersSize, bodyPtr, bodySize, trailersPtr, trailersSize, timeoutMs);
    if (r.ok) this.root.httpCalls.add(r.value, this.id);
    return r;
  }

  /** At most once per stream: later calls return BadArgument without reaching the host. */
  sendLocalResponse(statusCode: u32, details: string, body: ArrayBuffer, headers: Header[], grpcStatus: i32 = -1): WasmResult {
    if (this.localResponseSent) return WasmResult.BadArgument;
    this.localResponseSent = true;
    return sendLocalResponse(statusCode, details, body, headers, grpcStatus);
  }

  /** sendLocalResponse with a raw body and serialized headers (local-response.ts), same guard. */
  sendLocalResponsePairs(
    statusCode: u32, details: ArrayBuffer, bodyPtr: usize, bodySize: usize, headersPtr: usize, headersSize: usize,
    grpcStatus: i32 = -1,
  ): WasmResult {
    if (this.localResponseSent) return WasmResult.BadArgument;
    this.localResponseSent = true;
    return sendLocalResponsePairs(statusCode, details, bodyPtr, bodySize, headersPtr, headersSize, grpcStatus);
  }

  /** Resumes a stream paused by a Stop* return value. */
  resume(stream: StreamType): WasmResult {
    return <WasmResult>proxy_continue_stream(stream);
  }

  /** Resets the stream. */
  close(stream: StreamType): WasmResult {
    return <WasmResult>proxy_close_stream(stream);
  }
}

/** Tells the host a root context that returned false from onDone has finished. */
export function done(): WasmResult {
  return <WasmResult>proxy_done();
}

export type RootFactory = (id: u32) => RootContext;

class Registration {
  constructor(public rootId: string, public factory: RootFactory) {}
}

const registrations = new Array<Registration>();
const roots = new Map<u32, RootContext>();
const streams = new Map<u32, StreamContext>();

/** Registers the root context type for plugins whose `root_id` is `rootId` (Istio:
 * WasmPlugin `pluginName`). With one registration it serves every root id. Call from
 * top-level code. */
export function registerRootContext(factory: RootFactory, rootId: string = ""): void {
  registrations.push(new Registration(rootId, factory));
}

function chooseFactory(): RootFactory | null {
  const n = registrations.length;
  if (n == 0) return null;
  if (n == 1) return unchecked(registrations[0]).factory;
  const rootId = getPropertyString(["plugin_root_id"]).value;
  let fallback = unchecked(registrations[0]).factory;
  for (let i = 0; i < n; i++) {
    const r = unchecked(registrations[i]);
    if (r.rootId == rootId) return r.factory;
    if (r.rootId == "") fallback = r.factory;
  }
  return fallback;
}

export function createRootContext(id: u32): void {
  const factory = chooseFactory();
  roots.set(id, factory === null ? new RootContext(id) : factory(id));
}

/** False when the parent root is unknown (the stream then stays untouched). */
export function createStreamContext(id: u32, rootId: u32): bool {
  if (!roots.has(rootId)) return false;
  streams.set(id, roots.get(rootId).createStream(id));
  return true;
}

export function findRoot(id: u32): RootContext | null {
  if (!roots.has(id)) return null;
  return roots.get(id);
}

export function findStream(id: u32): StreamContext | null {
  if (!streams.has(id)) return null;
  return streams.get(id);
}

export function deleteContext(id: u32): void {
  if (streams.has(id)) {
    const s = streams.get(id);
    streams.delete(id);
    s.finished = true;
    s.onDelete();
  } else if (roots.has(id)) {
    const r = roots.get(id);
    roots.delete(id);
    r.onDelete();
  }
}
