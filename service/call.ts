// What the handlers share: the parsed call and the ways to answer it. Answers are written on the
// raw ServerResponse with one precomputed flat header array (no Fastify serialization on the hot
// path, no added Content-Type: a replayed answer carries exactly the recorded headers).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { ERRORS, errorBody, type ErrorCode } from "./errors.ts";
import type { Metrics, Outcome } from "./metrics.ts";
import { stage, stages, unstage } from "./staging.ts";
import { StoreUnavailableError, type CacheStore, type Stack, type StoredResponse } from "./store/types.ts";

export type { Lookup, StoredResponse } from "./store/types.ts";

export interface Call {
  readonly stack: Stack;
  readonly requestId: string;
  readonly method: string;
  /** Normalized: lower-case, no trailing dot; `host[:port]`. */
  readonly authority: string;
  /** The request target as received (path + query), forwarded as is. */
  readonly path: string;
  /** `store.sequence` tuple (request id, method, authority, path+query minus ignored params). */
  readonly tuple: string;
  /** `http://host:port` or, for MIRROR_CACHE_HTTPS_HOSTS, `https://host:port`; test calls only
   * (empty for a mirror call, which is never forwarded). */
  readonly origin: string;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

export interface HandlerDeps {
  readonly store: CacheStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly debug: boolean;
  readonly ttlMs: number;
  readonly maxBodyBytes: number;
}

/** The head of an answer that carries a record: the recorded headers in their order,
 * `x-mirror-cache: <cache>`, then `content-length: <bodyLength>` unless the record has one. A
 * streamed test answer (whose head is written before its body is complete, from the upstream's
 * declared length) and every replay of its record are built by this one function, so they carry
 * the same headers. An empty body gets no length from us: Node adds `content-length: 0` where it
 * belongs and none to a HEAD answer (whose recorded length, if the upstream sent one, is kept). */
export function recordHead(h: ReadonlyArray<readonly [string, string]>, cache: string, bodyLength: number): string[] {
  const flat: string[] = new Array(h.length * 2 + 4);
  let i = 0;
  let hasLength = false;
  for (let j = 0; j < h.length; j++) {
    const name = h[j][0];
    if (name === "content-length") hasLength = true;
    flat[i++] = name;
    flat[i++] = h[j][1];
  }
  flat[i++] = "x-mirror-cache";
  flat[i++] = cache;
  if (!hasLength && bodyLength > 0) {
    flat[i++] = "content-length";
    flat[i++] = String(bodyLength);
  }
  flat.length = i;
  return flat;
}

/** Write a record (or any StoredResponse) with `x-mirror-cache: <cache>`, then release it. A
 * leased record (a body in the store's own memory) of a size `stages` takes is copied into a
 * staging buffer (staging.ts says why) and released at once; any other leased record is released
 * once the answer is handed to the OS ('finish'), when its body buffer may be reused. An answer
 * that never finishes — its connection cut — keeps its lease or its staging buffer, which is then
 * left to the garbage collector, since the socket may still have held it. */
export function sendRecord(res: ServerResponse, rec: StoredResponse, cache: string): void {
  if (res.headersSent || res.destroyed) return rec.release?.();
  const body = rec.body; // read once: a getter may build it on each read
  res.writeHead(rec.status, recordHead(rec.headers, cache, body.length));
  if (rec.release === undefined) return void res.end(body);
  if (!stages(body.length)) return void res.end(body, () => rec.release!());
  const copy = stage(body);
  rec.release();
  res.end(copy, () => unstage(copy));
}

/** Answer with a catalogue error: JSON body, `x-mirror-cache` from the catalogue (or none). */
export function sendError(res: ServerResponse, code: ErrorCode, message: string, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const spec = ERRORS[code];
  const body = errorBody(code, message);
  const flat = ["content-type", "application/json", "content-length", String(body.length)];
  if (spec.cache !== null) flat.push("x-mirror-cache", spec.cache);
  if (close) flat.push("connection", "close");
  res.writeHead(spec.status, flat);
  res.end(body);
}

export const OUTCOME: Readonly<Record<ErrorCode, Outcome>> = Object.freeze({
  MIRROR_CACHE_MISS: "miss",
  EGRESS_DENIED: "denied",
  INVALID_STACK: "invalid",
  INVALID_REQUEST_ID: "invalid",
  INVALID_AUTHORITY: "invalid",
  BODY_TOO_LARGE: "body_too_large",
  UPSTREAM_TIMEOUT: "upstream_timeout",
  UPSTREAM_UNAVAILABLE: "upstream_unavailable",
  UPSTREAM_RESPONSE_TOO_LARGE: "upstream_response_too_large",
  STORE_UNAVAILABLE: "store_unavailable",
  SHUTTING_DOWN: "shutting_down",
  BAD_REQUEST: "bad_request",
  HEADERS_TOO_LARGE: "bad_request",
  REQUEST_TIMEOUT: "bad_request",
  INTERNAL_ERROR: "internal_error",
});

/** A store operation failed: 503 STORE_UNAVAILABLE (or 500 for anything that is not the store
 * being unreachable), counted and logged. */
export function storeFailed(deps: HandlerDeps, call: Call, op: string, err: unknown): void {
  deps.metrics.storeError();
  const unavailable = err instanceof StoreUnavailableError || (err as { code?: string })?.code === "STORE_UNAVAILABLE";
  const code: ErrorCode = unavailable ? "STORE_UNAVAILABLE" : "INTERNAL_ERROR";
  deps.metrics.call(call.stack, OUTCOME[code]);
  if (unavailable) deps.log.warn({ reqId: call.requestId, stack: call.stack, op, err: (err as Error).message }, "store unavailable");
  else deps.log.error({ reqId: call.requestId, stack: call.stack, op, err }, "store operation failed");
  sendError(
    call.res,
    code,
    unavailable ? `the ${deps.store.kind} store is unavailable (${op}): ${(err as Error).message}` : `internal error during ${op}`,
  );
}

/** Most of an unwanted request body the service reads and throws away before it cuts the
 * connection instead. */
const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;

/** A request body that is still arriving and that the answer does not need (over the limit, or
 * the forward failed before reading it): read the rest and throw it away, then answer. Answering
 * first and closing a socket that still has unread input makes the kernel send a reset, and a
 * reset discards the answer at a client that is still sending — it would never see its 413.
 * Resolves once the body ended or the client left; past DISCARD_LIMIT_BYTES the connection is cut
 * (no answer). Node's requestTimeout bounds the time. */
export function discardRest(req: IncomingMessage): Promise<void> {
  if (req.complete || req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    req.unpipe();
    let read = 0;
    req.on("data", (chunk: Buffer) => {
      read += chunk.length;
      if (read > DISCARD_LIMIT_BYTES) req.socket.destroy();
    });
    req.once("end", resolve);
    req.once("close", resolve);
    req.resume();
  });
}

/** The request carries a body: chunked, or a Content-Length other than 0 (an HTTP/1.1 request
 * with neither has none). */
export function hasBody(call: Call): boolean {
  const h = call.req.headers;
  if (h["transfer-encoding"] !== undefined) return true;
  const cl = h["content-length"];
  return cl !== undefined && cl !== "0";
}

/** Body over the limit, known from Content-Length: refused before anything else. */
export function declaredBodyTooLarge(call: Call, limit: number): boolean {
  const cl = call.req.headers["content-length"];
  return cl !== undefined && Number(cl) > limit;
}

export function nowSeconds(): number {
  return performance.now() / 1000;
}
