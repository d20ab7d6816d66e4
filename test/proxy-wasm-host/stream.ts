// One HTTP stream through the plugin, as Envoy's filter manager + wasm Context drive it
// (contract.md §3, §4, §5, §8, §10). Two jobs kept together because they share every field:
//  * Envoy's Context pointers (request_headers_, request_body_buffer_, …) that decide which
//    maps/buffers the module may touch right now (phase rules, §5);
//  * the filter-manager iteration model: Continue / StopIteration / StopAll, buffering with the
//    connection buffer limit, resume via continue_stream, local replies that run through this
//    filter's encoder callbacks, and the end of the stream (on_log → on_done → on_delete).
//
// Model of StopAll (Envoy FilterManager, iterate_from_current_filter_): while the filter is
// stopped with StopAllIteration*, body chunks and trailers are buffered and the body callback is
// NOT called. On proxy_continue_stream the headers go upstream, then on_request_body is called
// ONCE with everything buffered (end_of_stream = request complete and no trailers), then
// on_request_trailers if trailers arrived. A plain StopIteration (only with
// allow_on_headers_stop_iteration) keeps delivering body chunks to the filter.
import type { Vm } from "./vm.ts";
import { getFirst, has, removeAll } from "./pairs.ts";
import type { RootContext } from "./root-context.ts";
import type { EmulatorOptions } from "./options.ts";
import type { PropertyScope } from "./properties.ts";
import {
  Action,
  BodyAction,
  MapType,
  type DownstreamResponse,
  type Header,
  type LocalResponse,
  type StreamState,
  type UpstreamRequest,
} from "./types.ts";

const EMPTY = new Uint8Array(0);
const WHITESPACE = /\s/;
const WHITESPACE_G = /\s/g;
const GRPC_UNAVAILABLE = 14;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
function clone(h: readonly Header[]): Header[] {
  const out: Header[] = new Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = [h[i][0], h[i][1]];
  return out;
}

type CallbackName = "on_request_headers" | "on_response_headers" | "on_request_body" | "on_response_body" | "on_request_trailers" | "on_response_trailers";
const KIND_HEADERS = 0, KIND_BODY = 1, KIND_TRAILERS = 2;
const CALLBACK_KIND: Record<CallbackName, number> = {
  on_request_headers: KIND_HEADERS, on_response_headers: KIND_HEADERS,
  on_request_body: KIND_BODY, on_response_body: KIND_BODY,
  on_request_trailers: KIND_TRAILERS, on_response_trailers: KIND_TRAILERS,
};
const CALLBACK_REQUEST: Record<CallbackName, boolean> = {
  on_request_headers: true, on_request_body: true, on_request_trailers: true,
  on_response_headers: false, on_response_body: false, on_response_trailers: false,
};

type Stop = "none" | "headers" | "all" | "body" | "trailers";

export interface StreamEvents {
  upstream(stream: HttpStream, req: UpstreamRequest): void;
  localResponse(stream: HttpStream, resp: LocalResponse): void;
  completed(stream: HttpStream): void;
}

interface LocalReplyInfo {
  statusCode: number;
  details: string;
  grpcStatus: number | undefined;
}

export class HttpStream {
  readonly kind = "stream" as const;
  /** Wall-clock ms at stream creation; startTimeNs is derived on demand (request.time). */
  private readonly startTimeMs = Date.now();
  private filterStateMap: Map<string, Uint8Array> | undefined;
  get startTimeNs(): bigint {
    return BigInt(this.startTimeMs) * 1_000_000n;
  }
  /** proxy_set_property values (Envoy filter state `wasm.<path>`), created on first use. */
  get filterState(): Map<string, Uint8Array> {
    return (this.filterStateMap ??= new Map());
  }
  /** Property scope, built on first get_property (host.ts). */
  scopeCache: PropertyScope | undefined;

  // --- Envoy Context state -------------------------------------------------------------------
  created = false; // in_vm_context_created_
  completed = false;
  failureReplySent = false; // failure_local_reply_sent_
  reqHeaders: Header[] | null = null;
  reqTrailers: Header[] | null = null;
  respHeaders: Header[] | null = null;
  respTrailers: Header[] | null = null;
  pReqHeaders = false;
  pReqTrailers = false;
  pRespHeaders = false;
  pRespTrailers = false;
  /** What buffer 0/1 shows the module (request_body_buffer_ or the decoding buffer); null = none. */
  reqBody: Uint8Array | null = null;
  respBody: Uint8Array | null = null;
  bufferingReq = false;
  bufferingResp = false;
  accessLog = false;
  endOfStream = false;
  /** In the last body callback with end_of_stream, trailers may be added (Envoy getMap, §5). */
  private inReqBodyCallback = false;
  private inRespBodyCallback = false;

  // --- filter-manager state ------------------------------------------------------------------
  private reqStop: Stop = "none";
  private reqStopAllBuffer = false;
  private reqHeadersPassed = false;
  private reqEnded = false;
  private reqEndedByFilter = false;
  /** Filter-manager buffered request data (Envoy's decoding buffer). */
  reqHeld: Uint8Array = EMPTY;
  private reqTrailersPending = false;
  private respStop: Stop = "none";
  private respStopAllBuffer = false;
  private respHeadersPassed = false;
  private respEnded = false;
  respHeld: Uint8Array = EMPTY;
  private respTrailersPending = false;
  private respSource: "upstream" | "local" | null = null;
  private localInfo: LocalReplyInfo | undefined;

  // --- what the outside world saw ------------------------------------------------------------
  upstream: UpstreamRequest | undefined;
  downstream: DownstreamResponse | undefined;
  localResponse: LocalResponse | undefined;
  responseCode: number | undefined;
  responseCodeDetails: string | undefined;
  /** Set when Envoy would leave the request hanging (second local reply, envoyproxy/envoy#28826). */
  hung: string | undefined;
  resetReason: string | undefined;
  readonly problems: string[] = [];

  constructor(
    readonly handle: number,
    readonly vm: Vm,
    readonly root: RootContext,
    readonly id: number,
    private readonly options: EmulatorOptions,
    private readonly events: StreamEvents,
  ) {}

  get worker(): number {
    return this.vm.worker;
  }
  private get plugin() {
    return this.root.plugin;
  }

  state(): StreamState {
    if (this.localInfo && !this.hung) return "local-reply";
    if (this.resetReason) return "closed";
    if (this.reqStop !== "none" || this.respStop !== "none" || this.hung) return "paused";
    if (this.upstream) return this.completed && !this.downstream ? "closed" : "upstream";
    return this.completed ? "closed" : "running";
  }

  /** True once Envoy has stopped processing the request direction (answered or reset). */
  private get answered(): boolean {
    return this.respSource === "local" || this.resetReason !== undefined || this.completed;
  }

  // ===== phase rules (Envoy Context::getMap / getConstMap / getBuffer) =========================

  /** Map for reading; null = not available now. */
  constMap(type: number): Header[] | null {
    switch (type) {
      case MapType.RequestHeaders:
        return this.accessLog ? this.reqHeaders : this.pReqHeaders ? this.reqHeaders : null;
      case MapType.RequestTrailers:
        return this.accessLog ? null : this.pReqTrailers ? this.reqTrailers : null;
      case MapType.ResponseHeaders:
        return this.accessLog ? this.respHeaders : this.pRespHeaders ? this.respHeaders : null;
      case MapType.ResponseTrailers:
        return this.accessLog ? this.respTrailers : this.pRespTrailers ? this.respTrailers : null;
      case MapType.HttpCallResponseHeaders:
        return this.root.httpCallResponse?.headers ?? null;
      case MapType.HttpCallResponseTrailers:
        return this.root.httpCallResponse?.trailers ?? null;
      default:
        return null;
    }
  }

  /** Map for writing (add/replace/remove/set pairs, and get size); null → BadArgument. */
  map(type: number): Header[] | null {
    switch (type) {
      case MapType.RequestHeaders:
        return this.pReqHeaders ? this.reqHeaders : null;
      case MapType.RequestTrailers:
        if (!this.pReqTrailers && this.inReqBodyCallback && this.endOfStream && !this.reqTrailers) {
          this.reqTrailers = [];
          this.pReqTrailers = true; // addDecodedTrailers from the last body callback
        }
        return this.pReqTrailers ? this.reqTrailers : null;
      case MapType.ResponseHeaders:
        return this.pRespHeaders ? this.respHeaders : null;
      case MapType.ResponseTrailers:
        if (!this.pRespTrailers && this.inRespBodyCallback && this.endOfStream && !this.respTrailers) {
          this.respTrailers = [];
          this.pRespTrailers = true;
        }
        return this.pRespTrailers ? this.respTrailers : null;
      default:
        return null;
    }
  }

  // ===== lifecycle =========================================================================

  private onCreate(): void {
    if (this.created) return;
    this.created = true;
    if (this.vm.failed) return;
    this.vm.invoke("on_context_create", this, this.id, this.root.id);
    this.vm.drain();
  }

  /** Envoy order at stream end: on_log (access-log phase), on_done, on_delete (§3). */
  complete(): void {
    if (this.completed) return;
    this.completed = true;
    // Envoy creates the context right before on_log if the filter never saw the request (§3).
    this.onCreate();
    if (!this.vm.failed) {
      this.accessLog = true;
      this.vm.invoke("on_log", this, this.id);
      this.accessLog = false;
      this.vm.drain();
      this.vm.invoke("on_done", this, this.id);
      this.vm.drain();
      this.vm.invoke("on_delete", this, this.id);
      this.vm.drain();
    }
    this.vm.contexts.delete(this.id);
    this.events.completed(this);
  }

  // ===== calling the module with Envoy's conversions and failure handling =====================

  /**
   * One callback with cpp-host's CHECK_FAIL_HTTP around it: on a failed VM, FAIL_OPEN → Continue,
   * otherwise the stream gets Envoy's 503 `wasm_fail_stream` and stops (§10).
   */
  private run(name: CallbackName, a: number, b?: number): number {
    const kind = CALLBACK_KIND[name];
    const stopValue = kind === KIND_HEADERS ? Action.StopAllIterationAndWatermark : kind === KIND_BODY ? BodyAction.StopIterationNoBuffer : Action.StopIteration;
    const vm = this.vm;
    if (vm.failed) return this.failedVm(CALLBACK_REQUEST[name], stopValue);
    if (!vm.has(name)) return Action.Continue;
    const r = b === undefined ? vm.invoke(name, this, this.id, a) : vm.invoke(name, this, this.id, a, b);
    if (vm.failed) return this.failedVm(CALLBACK_REQUEST[name], stopValue);
    const v = r! >>> 0;
    const forced = vm.lastCallStopped;
    if (kind === KIND_HEADERS) {
      if (forced || v > Action.StopAllIterationAndWatermark) return Action.StopAllIterationAndWatermark;
      if (v === Action.StopIteration && !this.root.plugin.allowOnHeadersStopIteration) return Action.StopAllIterationAndWatermark;
      return v;
    }
    if (kind === KIND_BODY) return forced || v > BodyAction.StopIterationNoBuffer ? BodyAction.StopIterationNoBuffer : v;
    return forced || v > Action.StopIteration ? Action.StopIteration : v;
  }

  private failedVm(request: boolean, stopValue: number): number {
    if (this.plugin.failurePolicy === "FAIL_OPEN") return Action.Continue;
    if (!this.failureReplySent) {
      this.failureReplySent = true;
      const send = () => this.sendLocalReply(503, EMPTY, [], GRPC_UNAVAILABLE, "wasm_fail_stream", request ? "decoder" : "encoder");
      // Envoy sends it from inside the callback; defer to keep one reply path for the stream.
      this.vm.addAfterCall(send);
    }
    return stopValue;
  }

  // ===== request direction =================================================================

  requestHeaders(headers: Header[], endOfStream: boolean): number {
    if (this.reqHeaders) throw new Error("callOnRequestHeaders: request headers were already sent on this stream");
    if (this.completed) throw new Error("callOnRequestHeaders: stream already completed");
    this.reqHeaders = headers;
    this.reqEnded = endOfStream;
    this.onCreate();
    this.pReqHeaders = true;
    this.endOfStream = endOfStream;
    const r = this.run("on_request_headers", headers.length, endOfStream ? 1 : 0);
    if (r === Action.Continue) this.pReqHeaders = false;
    if (r === Action.Continue) {
      this.passRequestHeaders();
      if (endOfStream) this.finishUpstream();
    } else if (r === Action.ContinueAndEndStream) {
      this.passRequestHeaders();
      this.reqEndedByFilter = true;
      this.finishUpstream();
    } else if (r === Action.StopIteration) {
      this.reqStop = "headers";
    } else {
      this.reqStop = "all";
      this.reqStopAllBuffer = r === Action.StopAllIterationAndBuffer;
    }
    this.vm.drain();
    return r;
  }

  requestBody(chunk: Uint8Array, endOfStream: boolean): number {
    if (!this.reqHeaders) throw new Error("callOnRequestBody: send request headers first");
    if (this.reqEnded) throw new Error("callOnRequestBody: the request already ended");
    this.reqEnded = endOfStream;
    if (this.answered || this.reqEndedByFilter) return Action.Continue; // Envoy drops it
    if (this.reqStop === "all") {
      this.reqHeld = concat(this.reqHeld, chunk);
      if (this.reqStopAllBuffer && this.reqHeld.length > this.options.bufferLimitBytes) this.requestTooLarge();
      return BodyAction.StopIterationAndBuffer; // held by the filter manager, callback not called
    }
    const r = this.deliverRequestBody(chunk, endOfStream);
    this.vm.drain();
    return r;
  }

  private deliverRequestBody(chunk: Uint8Array, endOfStream: boolean): number {
    const wasBuffering = this.bufferingReq;
    if (wasBuffering) {
      this.reqHeld = concat(this.reqHeld, chunk); // addDecodedData: the module sees the whole buffer
      if (this.reqHeld.length > this.options.bufferLimitBytes) {
        this.requestTooLarge();
        return BodyAction.StopIterationAndBuffer;
      }
    }
    this.reqBody = wasBuffering ? this.reqHeld : chunk;
    this.endOfStream = endOfStream;
    this.inReqBodyCallback = true;
    const r = this.run("on_request_body", this.reqBody.length, endOfStream ? 1 : 0);
    this.inReqBodyCallback = false;
    if (this.answered) return r;
    const out = wasBuffering ? this.reqHeld : (this.reqBody ?? EMPTY);
    this.bufferingReq = false;
    switch (r) {
      case BodyAction.Continue: {
        this.reqBody = null;
        const data = wasBuffering ? out : concat(this.reqHeld, out);
        this.reqHeld = EMPTY;
        this.reqStop = "none";
        this.passRequestHeaders();
        this.upstream!.body = concat(this.upstream!.body, data);
        if (endOfStream) {
          if (this.reqTrailers) this.upstream!.trailers = clone(this.reqTrailers);
          this.finishUpstream();
        }
        break;
      }
      case BodyAction.StopIterationAndBuffer:
        this.bufferingReq = true;
        this.reqHeld = wasBuffering ? out : concat(this.reqHeld, out);
        this.reqStop = "body";
        if (this.reqHeld.length > this.options.bufferLimitBytes) this.requestTooLarge();
        break;
      case BodyAction.StopIterationAndWatermark:
        this.reqHeld = wasBuffering ? out : concat(this.reqHeld, out);
        this.reqStop = "body";
        break;
      default: // StopIterationNoBuffer: the chunk is not kept
        if (wasBuffering) this.reqHeld = EMPTY;
        this.reqStop = "body";
    }
    return r;
  }

  requestTrailers(trailers: Header[]): number {
    if (!this.reqHeaders) throw new Error("callOnRequestTrailers: send request headers first");
    if (this.reqEnded) throw new Error("callOnRequestTrailers: the request already ended");
    this.reqTrailers = trailers;
    this.reqEnded = true;
    if (this.answered || this.reqEndedByFilter) return Action.Continue;
    if (this.reqStop === "all") {
      this.reqTrailersPending = true;
      return Action.StopIteration;
    }
    const r = this.deliverRequestTrailers();
    this.vm.drain();
    return r;
  }

  private deliverRequestTrailers(): number {
    this.reqTrailersPending = false;
    this.pReqTrailers = true;
    const r = this.run("on_request_trailers", this.reqTrailers!.length);
    if (r === Action.Continue) {
      this.pReqTrailers = false;
      this.releaseRequest();
    } else {
      this.reqStop = "trailers";
    }
    return r;
  }

  /** Everything held goes upstream, without calling this filter again (single-iteration stops). */
  private releaseRequest(): void {
    this.reqStop = "none";
    this.bufferingReq = false;
    this.passRequestHeaders();
    this.upstream!.body = concat(this.upstream!.body, this.reqHeld);
    this.reqHeld = EMPTY;
    if (this.reqTrailers) this.upstream!.trailers = clone(this.reqTrailers);
    if (this.reqEnded) this.finishUpstream();
  }

  /** Envoy's continueDecoding, run as an after-VM-call action (§7). */
  resumeRequest(): void {
    if (this.answered || this.reqStop === "none") return;
    const stop = this.reqStop;
    if (stop !== "all") {
      this.releaseRequest();
      return;
    }
    // StopAll: resume from this filter: headers on, then the held body to on_request_body once.
    this.reqStop = "none";
    const held = this.reqHeld;
    this.reqHeld = EMPTY;
    this.passRequestHeaders();
    if (held.length > 0) {
      this.deliverRequestBody(held, this.reqEnded && !this.reqTrailersPending);
      if (this.reqStop !== "none" || this.answered) return;
    }
    if (this.reqTrailersPending) this.deliverRequestTrailers();
    else if (this.reqEnded && held.length === 0) this.finishUpstream();
  }

  private passRequestHeaders(): void {
    if (this.reqHeadersPassed) return;
    this.reqHeadersPassed = true;
    this.upstream = { headers: clone(this.reqHeaders!), body: EMPTY, trailers: [], complete: false };
  }

  private finishUpstream(): void {
    if (!this.upstream || this.upstream.complete) return;
    this.upstream.complete = true;
    this.events.upstream(this, this.upstream);
  }

  private requestTooLarge(): void {
    this.reqStop = "none";
    this.reqHeld = EMPTY;
    this.bufferingReq = false;
    this.sendLocalReply(413, Buffer.from("Payload Too Large"), [], undefined, "request_payload_too_large", "decoder");
  }

  // ===== response direction ================================================================

  responseHeaders(headers: Header[], endOfStream: boolean): number {
    if (!this.upstream) throw new Error("callOnResponseHeaders: the request never reached the upstream (the filter did not let it through)");
    if (this.respSource === "local") throw new Error("callOnResponseHeaders: the stream was already answered by a local reply");
    if (this.respHeaders) throw new Error("callOnResponseHeaders: response headers were already sent on this stream");
    if (this.completed) throw new Error("callOnResponseHeaders: stream already completed");
    this.respSource = "upstream";
    return this.feedResponseHeaders(headers, endOfStream);
  }

  responseBody(chunk: Uint8Array, endOfStream: boolean): number {
    if (this.respSource !== "upstream" || !this.respHeaders) throw new Error("callOnResponseBody: send upstream response headers first");
    if (this.respEnded) throw new Error("callOnResponseBody: the response already ended");
    if (this.completed || this.resetReason) return Action.Continue;
    return this.feedResponseBody(chunk, endOfStream);
  }

  responseTrailers(trailers: Header[]): number {
    if (this.respSource !== "upstream" || !this.respHeaders) throw new Error("callOnResponseTrailers: send upstream response headers first");
    if (this.respEnded) throw new Error("callOnResponseTrailers: the response already ended");
    if (this.completed || this.resetReason) return Action.Continue;
    return this.feedResponseTrailers(trailers);
  }

  private get filterActiveOnEncode(): boolean {
    // Envoy encodeHeaders/Data/Trailers: skip the VM when the context was never created or the
    // failure reply was sent.
    return this.created && !this.failureReplySent;
  }

  private feedResponseHeaders(headers: Header[], endOfStream: boolean): number {
    this.respHeaders = headers;
    this.respEnded = endOfStream;
    const status = Number(getFirst(headers, ":status"));
    if (Number.isFinite(status)) this.responseCode = status;
    let r: number = Action.Continue;
    if (this.filterActiveOnEncode) {
      this.pRespHeaders = true;
      this.endOfStream = endOfStream;
      r = this.run("on_response_headers", headers.length, endOfStream ? 1 : 0);
      if (r === Action.Continue) this.pRespHeaders = false;
    }
    if (this.hung || this.resetReason) {
      this.vm.drain();
      return r;
    }
    if (r === Action.Continue || r === Action.ContinueAndEndStream) {
      this.passResponseHeaders();
      if (endOfStream || r === Action.ContinueAndEndStream) this.finishDownstream();
    } else if (r === Action.StopIteration) {
      this.respStop = "headers";
    } else {
      this.respStop = "all";
      this.respStopAllBuffer = r === Action.StopAllIterationAndBuffer;
    }
    this.vm.drain();
    return r;
  }

  private feedResponseBody(chunk: Uint8Array, endOfStream: boolean): number {
    this.respEnded = endOfStream;
    if (this.respStop === "all") {
      this.respHeld = concat(this.respHeld, chunk);
      if (this.respStopAllBuffer && this.respHeld.length > this.options.bufferLimitBytes) this.responseTooLarge();
      return BodyAction.StopIterationAndBuffer;
    }
    const r = this.deliverResponseBody(chunk, endOfStream);
    this.vm.drain();
    return r;
  }

  private deliverResponseBody(chunk: Uint8Array, endOfStream: boolean): number {
    if (!this.filterActiveOnEncode) {
      this.passResponseHeaders();
      this.downstream!.body = concat(this.downstream!.body, chunk);
      if (endOfStream) this.finishDownstream();
      return BodyAction.Continue;
    }
    const wasBuffering = this.bufferingResp;
    if (wasBuffering) {
      this.respHeld = concat(this.respHeld, chunk);
      if (this.respHeld.length > this.options.bufferLimitBytes) {
        this.responseTooLarge();
        return BodyAction.StopIterationAndBuffer;
      }
    }
    this.respBody = wasBuffering ? this.respHeld : chunk;
    this.endOfStream = endOfStream;
    this.inRespBodyCallback = true;
    const r = this.run("on_response_body", this.respBody.length, endOfStream ? 1 : 0);
    this.inRespBodyCallback = false;
    if (this.hung || this.resetReason || this.downstream?.complete) return r;
    const out = wasBuffering ? this.respHeld : (this.respBody ?? EMPTY);
    this.bufferingResp = false;
    switch (r) {
      case BodyAction.Continue: {
        this.respBody = null;
        const data = wasBuffering ? out : concat(this.respHeld, out);
        this.respHeld = EMPTY;
        this.respStop = "none";
        this.passResponseHeaders();
        this.downstream!.body = concat(this.downstream!.body, data);
        if (endOfStream) {
          if (this.respTrailers) this.downstream!.trailers = clone(this.respTrailers);
          this.finishDownstream();
        }
        break;
      }
      case BodyAction.StopIterationAndBuffer:
        this.bufferingResp = true;
        this.respHeld = wasBuffering ? out : concat(this.respHeld, out);
        this.respStop = "body";
        if (this.respHeld.length > this.options.bufferLimitBytes) this.responseTooLarge();
        break;
      case BodyAction.StopIterationAndWatermark:
        this.respHeld = wasBuffering ? out : concat(this.respHeld, out);
        this.respStop = "body";
        break;
      default:
        if (wasBuffering) this.respHeld = EMPTY;
        this.respStop = "body";
    }
    return r;
  }

  private feedResponseTrailers(trailers: Header[]): number {
    this.respTrailers = trailers;
    this.respEnded = true;
    if (this.respStop === "all") {
      this.respTrailersPending = true;
      return Action.StopIteration;
    }
    const r = this.deliverResponseTrailers();
    this.vm.drain();
    return r;
  }

  private deliverResponseTrailers(): number {
    this.respTrailersPending = false;
    let r: number = Action.Continue;
    if (this.filterActiveOnEncode) {
      this.pRespTrailers = true;
      r = this.run("on_response_trailers", this.respTrailers!.length);
    }
    if (r === Action.Continue) {
      this.pRespTrailers = false;
      this.releaseResponse();
    } else {
      this.respStop = "trailers";
    }
    return r;
  }

  private releaseResponse(): void {
    this.respStop = "none";
    this.bufferingResp = false;
    this.passResponseHeaders();
    this.downstream!.body = concat(this.downstream!.body, this.respHeld);
    this.respHeld = EMPTY;
    if (this.respTrailers) this.downstream!.trailers = clone(this.respTrailers);
    if (this.respEnded) this.finishDownstream();
  }

  /** Envoy's continueEncoding. */
  resumeResponse(): void {
    if (this.respStop === "none" || this.hung || this.resetReason || this.completed) return;
    if (this.respStop !== "all") {
      this.releaseResponse();
      return;
    }
    this.respStop = "none";
    const held = this.respHeld;
    this.respHeld = EMPTY;
    this.passResponseHeaders();
    if (held.length > 0) {
      this.deliverResponseBody(held, this.respEnded && !this.respTrailersPending);
      if (this.respStop !== "none" || this.downstream?.complete || this.hung) return;
    }
    if (this.respTrailersPending) this.deliverResponseTrailers();
    else if (this.respEnded && held.length === 0) this.finishDownstream();
  }

  private passResponseHeaders(): void {
    if (this.respHeadersPassed) return;
    this.respHeadersPassed = true;
    this.downstream = { headers: clone(this.respHeaders!), body: EMPTY, trailers: [], complete: false };
  }

  /** The response reached the client: record a local reply, then Envoy ends the stream. */
  private finishDownstream(): void {
    if (!this.downstream || this.downstream.complete) return;
    this.downstream.complete = true;
    if (this.respSource === "local" && this.localInfo) {
      const l = this.localInfo;
      this.localResponse = { statusCode: l.statusCode, details: l.details, grpcStatus: l.grpcStatus, headers: clone(this.downstream.headers), body: this.downstream.body };
      this.events.localResponse(this, this.localResponse);
    }
    this.complete();
  }

  private responseTooLarge(): void {
    this.respStop = "none";
    this.respHeld = EMPTY;
    this.bufferingResp = false;
    this.sendLocalReply(500, Buffer.from("Internal Server Error"), [], undefined, "response_payload_too_large", "encoder");
  }

  // ===== local replies (§8) ================================================================

  /** proxy_send_local_response: queued until the VM call returns (Envoy addAfterVmCallAction). */
  queueLocalReply(statusCode: number, details: string, body: Uint8Array, headers: Header[], grpcStatus: number): void {
    this.vm.stopNextIteration = true;
    const grpc = grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus : undefined;
    const d = WHITESPACE.test(details) ? details.replace(WHITESPACE_G, "_") : details;
    this.vm.addAfterCall(() => this.sendLocalReply(statusCode, body, headers, grpc, d, "decoder"));
  }

  /**
   * Envoy's FilterManager::sendLocalReply. Before any response: through this filter's encoder
   * callbacks. While a local reply is already being encoded: the request hangs
   * (envoyproxy/envoy#28826). While an upstream response is being encoded but not yet sent: a
   * direct reply that bypasses the filters. After response headers went downstream: reset.
   */
  sendLocalReply(statusCode: number, body: Uint8Array, extraHeaders: Header[], grpcStatus: number | undefined, details: string, _from: "decoder" | "encoder"): void {
    if (this.completed || this.resetReason || this.hung) return;
    if (this.respHeadersPassed) {
      this.reset(`local reply ${statusCode} after response headers were sent downstream`);
      return;
    }
    if (this.respSource === "local") {
      this.hung = `send_local_response(${statusCode}) called while the local reply ${this.localInfo?.statusCode} was running through the filter: Envoy leaves the request hanging (envoyproxy/envoy#28826)`;
      this.problems.push(this.hung);
      this.respStop = "none";
      return;
    }
    const headers: Header[] = [[":status", String(statusCode)]];
    for (let i = 0; i < extraHeaders.length; i++) headers.push([extraHeaders[i][0].toLowerCase(), extraHeaders[i][1]]);
    if (body.length > 0) {
      removeAll(headers, "content-length");
      headers.push(["content-length", String(body.length)]);
      if (!has(headers, "content-type")) headers.push(["content-type", "text/plain"]);
    }
    this.localInfo = { statusCode, details, grpcStatus };
    this.responseCodeDetails = details;
    // The request direction is over: nothing more goes upstream.
    this.reqStop = "none";
    this.reqHeld = EMPTY;
    this.bufferingReq = false;
    if (this.respSource === "upstream") {
      // Direct reply, the upstream response is dropped and the filter is not called again.
      this.respSource = "local";
      this.responseCode = statusCode;
      this.respStop = "none";
      this.downstream = { headers, body, trailers: [], complete: false };
      this.respHeadersPassed = true;
      this.finishDownstream();
      return;
    }
    this.respSource = "local";
    this.feedResponseHeaders(headers, body.length === 0);
    if (body.length > 0 && !this.hung && !this.resetReason && !this.completed) this.feedResponseBody(body, true);
  }

  // ===== stream control from the module =====================================================

  /** proxy_continue_stream(0|1): clear Envoy's request pointers now, continue after the call. */
  continueStream(type: number): void {
    this.pReqHeaders = false;
    this.reqBody = null;
    this.pReqTrailers = false;
    if (type === 0) this.vm.addAfterCall(() => this.resumeRequest());
    else this.vm.addAfterCall(() => this.resumeResponse());
  }

  /** proxy_close_stream(0|1): reset after the call (details wasm_close_stream). */
  closeStream(): void {
    this.responseCodeDetails ??= "wasm_close_stream";
    this.vm.addAfterCall(() => this.reset("wasm_close_stream"));
  }

  reset(reason: string): void {
    if (this.completed || this.resetReason) return;
    this.resetReason = reason;
    this.reqStop = "none";
    this.respStop = "none";
    this.complete();
  }
}
