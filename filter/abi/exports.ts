// The module's exports: the ABI marker, the allocator cpp-host uses for host → module data,
// and the proxy_on_* callbacks, dispatched to the contexts in context.ts.
// Callbacks never trap on ids they do not know: they act as if the callback were absent.
//
// Memory: built with `--runtime minimal`, whose collector never runs on its own and does not
// scan the stack. It is run here, at the end of callbacks after which nothing lives only in
// locals: every COLLECT_EVERY streams (on_delete), after configuration, and after a root's own
// call response. That keeps a VM's memory flat without the shadow stack the incremental
// runtime needs (≈ 20 KiB of code and a cost on every call).
import { proxy_set_effective_context } from "./imports";
import { createRootContext, createStreamContext, deleteContext, findRoot, findStream } from "./context";
import { beginHttpCallResponse, endHttpCallResponse } from "./http-call";
import { LogLevel, WasmResult } from "./status";
import { logAlways, logEnabled } from "./log";
// Compiled in for `--use abort=filter/abi/abort/onAbort`.
import "./abort";

export function proxy_abi_version_0_2_1(): void {}

/** Streams between collections: amortizes marking the live set (roots, configuration). */
const COLLECT_EVERY: u32 = 16;
let deletedSinceCollect: u32 = 0;

/** Requests beyond this get 0 (the host reports InvalidMemoryAccess) instead of an allocator
 * trap; linear memory is capped at 1 GiB by cpp-host anyway. */
const MAX_HOST_ALLOCATION: usize = 512 << 20;

/** cpp-host writes every host → module value (headers, bodies, properties) into memory from
 * here; the runtime frees each such buffer with heap.free once it has copied it. */
export function malloc(size: usize): usize {
  if (size > MAX_HOST_ALLOCATION) return 0;
  return heap.alloc(size);
}

export function proxy_on_context_create(contextId: u32, parentId: u32): void {
  if (parentId == 0) createRootContext(contextId);
  else createStreamContext(contextId, parentId);
}

export function proxy_on_vm_start(rootId: u32, vmConfigurationSize: u32): bool {
  const r = findRoot(rootId);
  return r !== null && r.onVmStart(vmConfigurationSize);
}

export function proxy_on_configure(rootId: u32, configurationSize: u32): bool {
  const r = findRoot(rootId);
  const ok = r !== null && r.onConfigure(configurationSize);
  __collect();
  return ok;
}

export function proxy_on_request_headers(id: u32, headerCount: u32, endOfStream: u32): u32 {
  const s = findStream(id);
  return s === null ? 0 : s.onRequestHeaders(headerCount, endOfStream != 0);
}

export function proxy_on_request_body(id: u32, bodySize: u32, endOfStream: u32): u32 {
  const s = findStream(id);
  return s === null ? 0 : s.onRequestBody(bodySize, endOfStream != 0);
}

export function proxy_on_request_trailers(id: u32, trailerCount: u32): u32 {
  const s = findStream(id);
  return s === null ? 0 : s.onRequestTrailers(trailerCount);
}

export function proxy_on_response_headers(id: u32, headerCount: u32, endOfStream: u32): u32 {
  const s = findStream(id);
  return s === null ? 0 : s.onResponseHeaders(headerCount, endOfStream != 0);
}

export function proxy_on_response_body(id: u32, bodySize: u32, endOfStream: u32): u32 {
  const s = findStream(id);
  return s === null ? 0 : s.onResponseBody(bodySize, endOfStream != 0);
}

export function proxy_on_response_trailers(id: u32, trailerCount: u32): u32 {
  const s = findStream(id);
  return s === null ? 0 : s.onResponseTrailers(trailerCount);
}

/** Delivered on the root; handed to the stream that dispatched the call if it still exists. */
export function proxy_on_http_call_response(rootId: u32, token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {
  const root = findRoot(rootId);
  if (root === null) return;
  const owner = root.httpCalls.take(token);
  if (owner < 0) return;
  if (<u32>owner == rootId) {
    beginHttpCallResponse();
    root.onHttpCallResponse(token, headerCount, bodySize, trailerCount);
    endHttpCallResponse();
    __collect();
    return;
  }
  const s = findStream(<u32>owner);
  // The stream ended (client gone, local reply) before the answer: nothing to resume.
  if (s === null || s.finished || proxy_set_effective_context(<u32>owner) != WasmResult.Ok) {
    if (logEnabled(LogLevel.Debug)) logAlways(LogLevel.Debug, "http call " + token.toString() + ": stream " + owner.toString() + " is gone, response dropped");
    return;
  }
  beginHttpCallResponse();
  s.onHttpCallResponse(token, headerCount, bodySize, trailerCount);
  endHttpCallResponse();
}

export function proxy_on_log(id: u32): void {
  const s = findStream(id);
  if (s !== null) s.onLog();
}

export function proxy_on_done(id: u32): bool {
  const s = findStream(id);
  if (s !== null) {
    s.finished = true;
    s.onDone();
    return true;
  }
  const r = findRoot(id);
  return r === null || r.onDone();
}

export function proxy_on_delete(id: u32): void {
  deleteContext(id);
  if (++deletedSinceCollect >= COLLECT_EVERY) {
    deletedSinceCollect = 0;
    __collect();
  }
}
