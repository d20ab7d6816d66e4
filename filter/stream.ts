// One HTTP stream through the filter (CONTRACTS.md "Filter behaviour on an outbound request").
//
// Outbound: passthrough → untouched. Otherwise the app's stack header is removed; without a
// request id a test call goes on untagged and a mirror call is refused; else the call is
// tagged, held (with its body when buffer_bodies is on) and dispatched to the cache, whose
// answer becomes a local reply. A cache failure lets a test call continue to its real
// upstream (fail open) and refuses a mirror call with a 503 (fail closed). So does a body over
// max_body_bytes: decided at the headers when content-length says so (nothing buffered, so Envoy's
// own buffer limit never answers 413 for it), else while buffering a chunked body.
// Inbound: on the mirror stack, a -shadow :authority is restored; nothing else.
import { getBufferBytes } from "./abi/buffers";
import { HostBytes, toBytes } from "./abi/bytes";
import { StreamContext } from "./abi/context";
import { addHeader, getHeader, readHeaderPairs, removeHeader, replaceHeader } from "./abi/headers";
import { getHttpCallStatus, readHttpCallResponseBody, readHttpCallResponsePairs } from "./abi/http-call";
import { logAlways, logEnabled } from "./abi/log";
import { Header, PairsView, PairsWriter } from "./abi/pairs";
import { getPropertyStringAt, propertyPath } from "./abi/properties";
import {
  BufferType, DataAction, HeadersAction, LogLevel, MapType, StreamType, TrailersAction, WasmResult, resultName,
} from "./abi/status";
import { Config, Direction, Stack } from "./config";
import { LENGTH_ABSENT, LENGTH_INVALID } from "./content-length";
import { CACHE_HEADER, RequestScan, Tagging, writeCacheAnswer, writeCacheRequest } from "./dispatch";
import { FilterMetrics } from "./metrics";
import { MeshMirrorRoot } from "./root";
import { restoreShadowHost } from "./shadow";

const NO_BODY = new ArrayBuffer(0);

// Reused by every stream of the VM, one callback at a time: a map as the host returned it, what
// the request headers say, and the map being built for the host (the cache call's headers, the
// local reply's headers, the trailers). Nothing here outlives the callback that filled it.
const hostMap = new PairsView();
const seen = new RequestScan();
const outMap = new PairsWriter();
const answerBody = new HostBytes();
const ANSWER_DETAILS = toBytes("mesh_mirror_cache_answer");

enum Phase {
  /** Not held by the filter. */
  Idle,
  /** Headers held, body being buffered until end of stream or trailers. */
  Buffering,
  /** Held while the cache call is outstanding. */
  Dispatched,
  /** Decided: continued, answered or refused. */
  Done,
}

export class MeshMirrorStream extends StreamContext {
  private phase: Phase = Phase.Idle;
  /** Buffered request body size, as last reported by on_request_body. */
  private bodySize: u32 = 0;
  /** Headers for the cache call (serialized), kept from on_request_headers while the body is buffered. */
  private held: ArrayBuffer = NO_BODY;

  constructor(id: u32, readonly plugin: MeshMirrorRoot) {
    super(id, plugin);
  }

  onRequestHeaders(headerCount: u32, endOfStream: bool): HeadersAction {
    const c = this.plugin.config;
    const m = this.plugin.metrics;
    if (c === null || m === null) return HeadersAction.Continue;
    if (c.direction == Direction.Inbound) {
      restoreShadow(c, m);
      return HeadersAction.Continue;
    }
    // Passthrough first, at the cost of one header read; a tagged call then reads the whole
    // map once (the dispatch needs it anyway).
    if (c.passthrough.matches(getHeader(MapType.RequestHeaders, ":authority").value) || destinationPasses(c)) {
      m.passthrough.increment();
      return HeadersAction.Continue;
    }
    const t = this.plugin.tagging!;
    const read = readHeaderPairs(MapType.RequestHeaders, hostMap);
    if (read != WasmResult.Ok) {
      return this.failNow(c, m, "reading the request headers failed (" + resultName(read) + ")") ? HeadersAction.Continue : HeadersAction.StopIteration;
    }
    seen.scan(hostMap, t);
    const action = this.outbound(c, m, t, endOfStream);
    hostMap.release();
    return action;
  }

  /** onRequestHeaders of an outbound request that does not pass, the request headers in
   * `hostMap` and `seen`. */
  private outbound(c: Config, m: FilterMetrics, t: Tagging, endOfStream: bool): HeadersAction {
    // No spoofing: whatever stack the app claims is dropped (every copy).
    const removed = seen.spoofed ? removeHeader(MapType.RequestHeaders, c.stackHeader) : WasmResult.Ok;
    if (removed != WasmResult.Ok) {
      return this.failNow(c, m, "could not remove the app's " + c.stackHeader + " (" + resultName(removed) + ")") ? HeadersAction.Continue : HeadersAction.StopIteration;
    }
    if (!seen.hasRequestId) {
      m.noRequestId.increment();
      if (c.stack != Stack.Mirror) return HeadersAction.Continue;
      this.refuse(m, "no-request-id", "NO_REQUEST_ID", "mirror call without " + c.requestIdHeader);
      return HeadersAction.StopIteration;
    }
    // The held request itself is tagged, so whatever continues it goes upstream tagged.
    const tagged = addHeader(MapType.RequestHeaders, c.stackHeader, c.stackValue);
    if (tagged != WasmResult.Ok) {
      return this.failNow(c, m, "could not set " + c.stackHeader + " (" + resultName(tagged) + ")") ? HeadersAction.Continue : HeadersAction.StopIteration;
    }
    m.tagged.increment();
    if (!endOfStream && !c.bufferBodies) {
      m.bodyNotBuffered.increment();
      if (c.stack != Stack.Mirror) return HeadersAction.Continue;
      this.refuse(m, "body-not-buffered", "BODY_NOT_BUFFERED", "mirror call with a body while buffer_bodies is false");
      return HeadersAction.StopIteration;
    }
    // A body declared larger than max_body_bytes (or with a content-length we cannot trust) is
    // never held: fail policy now, before Envoy buffers a byte of it. Buffering it until the
    // limit would risk Envoy's own 413 (its buffer limit is checked before on_request_body).
    if (!endOfStream) {
      const why = unbufferable(seen.contentLength, c.maxBodyBytes);
      if (why.length > 0) return this.failNow(c, m, why) ? HeadersAction.Continue : HeadersAction.StopIteration;
    }
    // The request as it will stand upstream (the app's stack headers gone, ours added last).
    writeCacheRequest(hostMap, t, seen.connection, outMap);
    if (!endOfStream) {
      this.held = outMap.toArrayBuffer();
      this.phase = Phase.Buffering;
      return HeadersAction.StopIteration;
    }
    const why = this.dispatch(c, m, outMap.ptr, outMap.size, NO_BODY, 0, 0);
    if (why.length == 0) return HeadersAction.StopIteration;
    return this.failNow(c, m, why) ? HeadersAction.Continue : HeadersAction.StopIteration;
  }

  onRequestBody(bodySize: u32, endOfStream: bool): DataAction {
    const c = this.plugin.config;
    const m = this.plugin.metrics;
    if (this.phase != Phase.Buffering || c === null || m === null) return DataAction.Continue;
    this.bodySize = bodySize;
    if (bodySize > c.maxBodyBytes) {
      const why = "request body of " + bodySize.toString() + " bytes is over max_body_bytes (" + c.maxBodyBytes.toString() + ")";
      return this.failNow(c, m, why) ? DataAction.Continue : DataAction.StopIterationNoBuffer;
    }
    if (!endOfStream) return DataAction.StopIterationAndBuffer;
    const body = getBufferBytes(BufferType.RequestBody, 0, bodySize);
    const why = body.ok ? this.dispatchHeld(c, m, body.value, 0, 0) : "reading the request body failed (" + resultName(body.status) + ")";
    if (why.length == 0) return DataAction.StopIterationAndBuffer;
    return this.failNow(c, m, why) ? DataAction.Continue : DataAction.StopIterationNoBuffer;
  }

  onRequestTrailers(trailerCount: u32): TrailersAction {
    const c = this.plugin.config;
    const m = this.plugin.metrics;
    if (this.phase != Phase.Buffering || c === null || m === null) return TrailersAction.Continue;
    const body = this.bodySize > 0 ? getBufferBytes(BufferType.RequestBody, 0, this.bodySize) : null;
    let why = "";
    if (body !== null && !body.ok) {
      why = "reading the request body failed (" + resultName(body.status) + ")";
    } else {
      // Unreadable trailers are sent as none, like an empty map.
      outMap.begin();
      if (readHeaderPairs(MapType.RequestTrailers, hostMap) == WasmResult.Ok) {
        while (hostMap.next()) outMap.addEntry(hostMap);
        hostMap.release();
      }
      const n = outMap.length;
      why = this.dispatchHeld(c, m, body !== null ? body.value : NO_BODY, n > 0 ? outMap.ptr : 0, n > 0 ? outMap.size : 0);
    }
    if (why.length == 0) return TrailersAction.StopIteration;
    return this.failNow(c, m, why) ? TrailersAction.Continue : TrailersAction.StopIteration;
  }

  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {
    const c = this.plugin.config;
    const m = this.plugin.metrics;
    if (this.phase != Phase.Dispatched || c === null || m === null) return;
    if (headerCount == 0) {
      const status = getHttpCallStatus();
      this.failLater(c, m, "cache call failed (" + (status.ok ? status.value.message : resultName(status.status)) + ")");
      return;
    }
    const read = readHttpCallResponsePairs(hostMap);
    if (read != WasmResult.Ok) {
      this.failLater(c, m, "reading the cache response failed (" + resultName(read) + ")");
      return;
    }
    // The local reply's headers go to outMap.
    const status = writeCacheAnswer(hostMap, outMap);
    hostMap.release();
    if (status < 0) {
      this.failLater(c, m, "the cache cluster answered without " + CACHE_HEADER + " (Envoy's own reply: cache unreachable or slow)");
      return;
    }
    const body = readHttpCallResponseBody(0, bodySize, answerBody);
    if (body != WasmResult.Ok) {
      this.failLater(c, m, "reading the cache response body failed (" + resultName(body) + ")");
      return;
    }
    this.phase = Phase.Done;
    m.answered.increment();
    this.sendLocalResponsePairs(<u32>status, ANSWER_DETAILS, answerBody.ptr, answerBody.size, outMap.ptr, outMap.size);
    answerBody.release();
  }

  /** Dispatches the request to the cache (headers and trailers serialized, trailers size 0 for
   * none); returns "" or why it could not. */
  private dispatch(
    c: Config, m: FilterMetrics, headersPtr: usize, headersSize: usize, body: ArrayBuffer, trailersPtr: usize, trailersSize: usize,
  ): string {
    const r = this.httpCallPairs(
      this.plugin.tagging!.cacheCluster, headersPtr, headersSize, changetype<usize>(body), body.byteLength, trailersPtr, trailersSize, c.timeoutMs,
    );
    if (!r.ok) return "dispatch to " + c.cacheCluster + " refused (" + resultName(r.status) + ")";
    m.dispatched.increment();
    this.phase = Phase.Dispatched;
    return "";
  }

  /** dispatch with the headers held since on_request_headers (the body was buffered). */
  private dispatchHeld(c: Config, m: FilterMetrics, body: ArrayBuffer, trailersPtr: usize, trailersSize: usize): string {
    const held = this.held;
    this.held = NO_BODY;
    return this.dispatch(c, m, changetype<usize>(held), held.byteLength, body, trailersPtr, trailersSize);
  }

  /** Cache failure inside a request callback. True: the test call continues (the callback
   * returns Continue); false: the mirror call was refused. */
  private failNow(c: Config, m: FilterMetrics, why: string): bool {
    this.phase = Phase.Done;
    warnFailure(c, why);
    if (c.stack == Stack.Mirror) {
      this.refuse(m, "unavailable", "CACHE_UNAVAILABLE", "mirror-cache unavailable");
      return false;
    }
    m.failedOpen.increment();
    return true;
  }

  /** Cache failure in the HTTP-call callback: resume the held test call, or refuse. */
  private failLater(c: Config, m: FilterMetrics, why: string): void {
    if (this.failNow(c, m, why)) {
      const r = this.resume(StreamType.Request);
      if (r != WasmResult.Ok && logEnabled(LogLevel.Warn)) {
        logAlways(LogLevel.Warn, "mesh-mirror: resuming the request failed (" + resultName(r) + ")");
      }
    }
  }

  /** The mirror stack's 503: `x-mirror-cache: <reason>` and a JSON body like the cache's. */
  private refuse(m: FilterMetrics, reason: string, code: string, message: string): void {
    this.phase = Phase.Done;
    m.refused.increment();
    const body = "{\"code\":\"MIRROR_" + code + "\",\"message\":\"" + message + "\"}";
    const headers: Header[] = [new Header(CACHE_HEADER, reason), new Header("content-type", "application/json")];
    this.sendLocalResponse(503, "mesh_mirror_" + reason.replaceAll("-", "_"), String.UTF8.encode(body), headers);
  }
}

/** Why a request body announced by its headers cannot be buffered, or "" (absent: chunked, the
 * body callback checks it; equal to the limit is allowed). */
function unbufferable(contentLength: f64, maxBodyBytes: u32): string {
  if (contentLength == LENGTH_ABSENT) return "";
  if (contentLength == LENGTH_INVALID) return "request content-length is malformed or conflicting; the body is not buffered";
  if (contentLength <= <f64>maxBodyBytes) return "";
  return "request content-length " + (<u64>contentLength).toString() + " is over max_body_bytes (" + maxBodyBytes.toString() + "); the body is not buffered";
}

const DESTINATION_ADDRESS = propertyPath(["destination", "address"]);

function destinationPasses(c: Config): bool {
  const address = getPropertyStringAt(DESTINATION_ADDRESS);
  return address.ok && c.passthrough.matches(address.value);
}

function restoreShadow(c: Config, m: FilterMetrics): void {
  if (c.stack != Stack.Mirror) return;
  const authority = getHeader(MapType.RequestHeaders, ":authority");
  if (!authority.ok) return;
  const original = restoreShadowHost(authority.value);
  if (original === null) return;
  if (replaceHeader(MapType.RequestHeaders, ":authority", original) == WasmResult.Ok) m.shadowRestored.increment();
}

function warnFailure(c: Config, why: string): void {
  if (!logEnabled(LogLevel.Warn)) return;
  const policy = c.stack == Stack.Mirror ? "mirror stack refuses the call (503)" : "test stack sends the call to its upstream";
  logAlways(LogLevel.Warn, "mesh-mirror: " + why + "; " + policy);
}
