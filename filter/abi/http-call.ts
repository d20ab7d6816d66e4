// proxy_http_call (dispatch_http_call). The response comes back on the *root* context;
// exports.ts routes it to the stream that dispatched it, using the owner recorded here.
// The response's headers, body and trailers exist only while that callback runs.
import { proxy_get_status, proxy_http_call } from "./imports";
import { HostBytes, SLOT_A, SLOT_B, SLOT_C, clearSlots, stage, stagedSize, takeString } from "./bytes";
import { getBufferBytes, readBufferBytes } from "./buffers";
import { getHeader, getHeaders, readHeaderPairs } from "./headers";
import { Header, PairsView, serializePairs } from "./pairs";
import { BufferType, MapType, Result, WasmResult } from "./status";

/** Sends a request to an Envoy *cluster* (not a URL). `headers` must hold `:method`, `:path`
 * and `:authority`, or Envoy answers BadArgument. Returns the call's token. */
export function httpCall(
  cluster: string, headers: Header[], body: ArrayBuffer, trailers: Header[], timeoutMs: u32,
): Result<u32> {
  const h = serializePairs(headers);
  // No trailers: an empty map (size 0) rather than an encoded zero count.
  const t = trailers.length > 0 ? serializePairs(trailers) : null;
  const c = stage(cluster);
  return call(
    c, stagedSize(), changetype<usize>(h), h.byteLength, changetype<usize>(body), body.byteLength,
    t === null ? 0 : changetype<usize>(t), t === null ? 0 : t.byteLength, timeoutMs,
  );
}

/** httpCall in wire form: the cluster name as bytes (`toBytes`, made once), headers and
 * trailers serialized (pairs.ts: e.g. a PairsWriter's ptr/size; trailers size 0 for none), the
 * body as raw bytes. The host copies everything before it returns. */
export function httpCallPairs(
  cluster: ArrayBuffer, headersPtr: usize, headersSize: usize, bodyPtr: usize, bodySize: usize,
  trailersPtr: usize, trailersSize: usize, timeoutMs: u32,
): Result<u32> {
  return call(
    changetype<usize>(cluster), cluster.byteLength, headersPtr, headersSize, bodyPtr, bodySize, trailersPtr, trailersSize, timeoutMs,
  );
}

function call(
  clusterPtr: usize, clusterSize: usize, headersPtr: usize, headersSize: usize, bodyPtr: usize, bodySize: usize,
  trailersPtr: usize, trailersSize: usize, timeoutMs: u32,
): Result<u32> {
  const r = <WasmResult>proxy_http_call(
    clusterPtr, clusterSize, headersPtr, headersSize, bodyPtr, bodySize, trailersPtr, trailersSize, timeoutMs, SLOT_A,
  );
  return new Result<u32>(r, r == WasmResult.Ok ? load<u32>(SLOT_A) : 0);
}

/** Outstanding calls of one root context: token → id of the context that dispatched it. */
export class HttpCallOwners {
  private owners: Map<u32, u32> = new Map<u32, u32>();

  add(token: u32, owner: u32): void {
    this.owners.set(token, owner);
  }

  /** Forgets the token and returns its owner, or -1 for a token this root never issued. */
  take(token: u32): i64 {
    if (!this.owners.has(token)) return -1;
    const owner = this.owners.get(token);
    this.owners.delete(token);
    return <i64>owner;
  }
}

let responding = false;

/** exports.ts brackets the response callback with these. */
export function beginHttpCallResponse(): void { responding = true; }
export function endHttpCallResponse(): void { responding = false; }

export function getHttpCallResponseHeaders(): Result<Header[]> {
  if (!responding) return new Result<Header[]>(WasmResult.BadArgument, []);
  return getHeaders(MapType.HttpCallResponseHeaders);
}

/** The response headers undecoded, into `view` (see readHeaderPairs). */
export function readHttpCallResponsePairs(view: PairsView): WasmResult {
  if (!responding) {
    view.release();
    return WasmResult.BadArgument;
  }
  return readHeaderPairs(MapType.HttpCallResponseHeaders, view);
}

export function getHttpCallResponseHeader(name: string): Result<string> {
  if (!responding) return new Result<string>(WasmResult.BadArgument, "");
  return getHeader(MapType.HttpCallResponseHeaders, name);
}

export function getHttpCallResponseBody(start: u32, length: u32): Result<ArrayBuffer> {
  if (!responding) return new Result<ArrayBuffer>(WasmResult.BadArgument, new ArrayBuffer(0));
  // An empty body is reported as size 0 and nothing is there to read.
  if (length == 0) return new Result<ArrayBuffer>(WasmResult.Ok, new ArrayBuffer(0));
  return getBufferBytes(BufferType.HttpCallResponseBody, start, length);
}

/** getHttpCallResponseBody without the copy: `into` takes the host's buffer. */
export function readHttpCallResponseBody(start: u32, length: u32, into: HostBytes): WasmResult {
  into.release();
  if (!responding) return WasmResult.BadArgument;
  if (length == 0) return WasmResult.Ok;
  return readBufferBytes(BufferType.HttpCallResponseBody, start, length, into);
}

export function getHttpCallResponseTrailers(): Result<Header[]> {
  if (!responding) return new Result<Header[]>(WasmResult.BadArgument, []);
  return getHeaders(MapType.HttpCallResponseTrailers);
}

export class CallStatus {
  constructor(public code: u32, public message: string) {}
}

/** Why a call failed, inside a response callback that got no headers
 * (Envoy: code 11 BrokenConnection, message "reset"). */
export function getHttpCallStatus(): Result<CallStatus> {
  clearSlots();
  const r = <WasmResult>proxy_get_status(SLOT_C, SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) return new Result<CallStatus>(r, new CallStatus(0, ""));
  const code = load<u32>(SLOT_C);
  return new Result<CallStatus>(r, new CallStatus(code, takeString(load<usize>(SLOT_A), load<usize>(SLOT_B))));
}
