// Forwarding a test call to its real upstream with undici: one Agent (a keep-alive pool per
// origin), connect / headers / body timeouts, hop-by-hop headers dropped both ways, the request
// body streamed, the answer's body streamed on to the caller when its length is declared (see
// `AnswerStream`), TLS origination for the configured https hosts, every connection through the
// egress connector. Upstream failures come back as error records (status + JSON body) so they can
// be recorded and replayed to the mirror like any answer.
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { Agent, buildConnector, errors as undiciErrors } from "undici";
import type { Config } from "./config.ts";
import { egressConnector, EgressPolicy, type Connector, type Resolver } from "./egress.ts";
import { errorBody, type ErrorCode } from "./errors.ts";
import type { StoredResponse } from "./store/types.ts";

/** Hop-by-hop headers (RFC 9110 §7.6.1 plus the legacy ones), never forwarded either way. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
  "http2-settings",
]);

const NO_TOKENS: string[] = [];
const EMPTY = Buffer.alloc(0);

/** Names listed in a Connection header value (lower-case). */
function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return NO_TOKENS;
  // the usual values name no other header: skip the split
  if (value === "keep-alive" || value === "close" || value === "Keep-Alive" || value === "Close") return NO_TOKENS;
  const v = Array.isArray(value) ? value.join(",") : value;
  return v
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

/** Request headers to send upstream, as a flat [name, value, …] array: hop-by-hop headers, the
 * headers named in `Connection`, `Expect` and the stack header dropped; the rest kept in order. */
export function upstreamRequestHeaders(rawHeaders: string[], stackHeader: string, connection: string | string[] | undefined): string[] {
  const tokens = connectionTokens(connection);
  const extra = tokens.length > 0 ? tokens : undefined;
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (HOP_BY_HOP.has(name) || name === stackHeader || name === "expect") continue;
    if (extra !== undefined && extra.includes(name)) continue;
    out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}

/** Response headers to record, from undici's raw header list ([name, value, …] Buffers):
 * end-to-end only (hop-by-hop ones and those named in `Connection` dropped), names lower-case,
 * in upstream order; an upstream's own `x-mirror-cache` is dropped (the answer carries ours,
 * exactly one). Content-Length is dropped (the answer carries the recorded body's length) unless
 * the body is empty — a HEAD or 304 answer keeps the upstream's value. Names and values are
 * decoded as latin1, which Node writes back byte for byte, so a replayed
 * header is the upstream's exact bytes (UTF-8 included). */
export function recordedRawHeaders(raw: Buffer[], bodyLength: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString("latin1").toLowerCase();
    if (name === "connection") {
      const v = raw[i + 1].toString("latin1");
      connection = connection === undefined ? v : `${connection},${v}`;
      continue;
    }
    if (HOP_BY_HOP.has(name) || name === "x-mirror-cache") continue;
    if (name === "content-length" && bodyLength > 0) continue;
    out.push([name, raw[i + 1].toString("latin1")]);
  }
  if (connection !== undefined) {
    const tokens = connectionTokens(connection);
    if (tokens.length > 0) return out.filter(([n]) => !tokens.includes(n));
  }
  return out;
}

/** The body length an answer declares (its Content-Length), from undici's raw headers; -1 when
 * it declares none (or one that is not a plain number: undici's parser has refused those). */
export function declaredLength(raw: Buffer[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 14 && name.toString("latin1").toLowerCase() === "content-length") {
      const v = raw[i + 1].toString("latin1").trim();
      return /^\d+$/.test(v) ? Number(v) : -1;
    }
  }
  return -1;
}

export class BodyTooLargeError extends Error {
  readonly code = "BODY_TOO_LARGE";
  constructor(limit: number) {
    super(`request body is over MIRROR_CACHE_MAX_BODY_BYTES (${limit} bytes)`);
    this.name = "BodyTooLargeError";
  }
}

/** Passes a body through, failing with BodyTooLargeError past `limit` bytes. */
export function limitBody(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > limit) cb(new BodyTooLargeError(limit));
      else cb(null, chunk);
    },
  });
}

/** Where an answer's body goes while it still arrives (the test call's response).
 *
 * Only an answer whose body length the upstream declared (Content-Length) is streamed, and only
 * once more than STREAM_AFTER_BYTES of it are in and more is to come. Until then — and for
 * every answer without a declared length (chunked, or ended by the connection closing), every
 * HEAD / 204 / 304 and every body of at most STREAM_AFTER_BYTES — nothing is written before the
 * exchange is complete, exactly as if there were no stream: the caller gets the whole answer, or
 * the recorded failure, with the same bytes the mirror will get. The reasons:
 *  - the streamed head must be the head every replay of the record carries, Content-Length
 *    included, so the length has to be known before the first byte is written;
 *  - a body over MIRROR_CACHE_MAX_RESPONSE_BYTES is then always refused before anything is
 *    written: a declared length over the limit fails at the headers, and an undeclared one is
 *    buffered until undici's own limit trips;
 *  - a small answer gains nothing from streaming, and a failure in its first bytes is answered
 *    as cleanly as today.
 * The bytes that complete the body are never passed to `write`: they arrive with the result,
 * whose `record.body` always holds the whole body; the caller writes `record.body.subarray(
 * streamed)` once it has recorded it, so a test answer is only complete once it is recorded. */
export interface AnswerStream {
  /** The answer will be streamed: `status`, the headers that will be recorded, and the declared
   * body `length`. Return false to have it taken whole at the end instead (nothing streamed). */
  start(status: number, headers: Array<[string, string]>, length: number): boolean;
  /** Body bytes, in order, after a `start` that returned true. */
  write(chunk: Buffer): void;
}

/** A declared body at most this long is never streamed (see `AnswerStream`). */
export const STREAM_AFTER_BYTES = 16 * 1024;

export interface ForwardRequest {
  method: string;
  /** `http://host:port` or `https://host:port`. */
  origin: string;
  path: string;
  /** Flat [name, value, …], already filtered by `upstreamRequestHeaders`. */
  headers: string[];
  body: Readable | null;
  /** Where to stream the answer's body, if anywhere (see `AnswerStream`). */
  stream?: AnswerStream;
}

/** `streamed`: how many body bytes were handed to `stream.write` (0: nothing was written, the
 * caller answers with `record` as a whole); `rest` (when `streamed` > 0): the body bytes after
 * those, for the caller to write once it has recorded the answer. `rest` is never a view of
 * `record.body`, which the store may adopt (ForwarderOptions.bodyBuffer) and reuse once the
 * record has left it. A failure after bytes were streamed (the upstream
 * reset or stalled mid-body) still carries its error record: the caller records it for the
 * mirror and can only cut its own answer. */
export type ForwardResult =
  | { ok: true; record: StoredResponse; streamed: number; rest: Buffer }
  | { ok: false; code: ErrorCode; message: string; record: StoredResponse; cause: unknown; streamed: number };

export interface Forwarder {
  forward(req: ForwardRequest): Promise<ForwardResult>;
  close(): Promise<void>;
}

const JSON_HEADERS: ReadonlyArray<[string, string]> = Object.freeze([["content-type", "application/json"]]) as ReadonlyArray<[string, string]>;

export function errorRecord(code: ErrorCode, status: number, message: string): StoredResponse {
  return { status, headers: JSON_HEADERS.slice() as Array<[string, string]>, body: errorBody(code, message) };
}

const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ETIMEDOUT"]);

/** Map a failed upstream exchange to a catalogue code. */
export function classifyUpstreamError(err: unknown, origin: string): { code: ErrorCode; status: number; message: string } {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code ?? "";
  const detail = e?.message || e?.cause?.message || String(err);
  if (code === "EGRESS_DENIED") return { code: "EGRESS_DENIED", status: 403, message: `egress to ${origin} refused: ${detail}` };
  if (code === "BODY_TOO_LARGE") return { code: "BODY_TOO_LARGE", status: 413, message: detail };
  if (code === "UND_ERR_RES_EXCEEDED_MAX_SIZE")
    return { code: "UPSTREAM_RESPONSE_TOO_LARGE", status: 502, message: `response from ${origin} is over MIRROR_CACHE_MAX_RESPONSE_BYTES` };
  if (TIMEOUT_CODES.has(code)) return { code: "UPSTREAM_TIMEOUT", status: 504, message: `upstream ${origin} timed out (${code}): ${detail}` };
  return { code: "UPSTREAM_UNAVAILABLE", status: 502, message: `upstream ${origin} unavailable${code ? ` (${code})` : ""}: ${detail}` };
}

export interface ForwarderOptions {
  config: Readonly<Config>;
  policy: EgressPolicy;
  resolver: Resolver;
  /** Socket-level connector; default undici's `buildConnector` with the configured timeout and CAs. */
  connector?: Connector;
  onDenied?: (reason: string) => void;
  /** Where the body of a streamed answer is gathered (its length is declared): the store's
   * `bodyBuffer`, so that `put` adopts it without a copy. Default `Buffer.allocUnsafeSlow`. */
  bodyBuffer?: (length: number) => Buffer;
}

export function createForwarder(o: ForwarderOptions): Forwarder {
  const { config } = o;
  const inner =
    o.connector ??
    buildConnector({
      timeout: config.connectTimeoutMs,
      ...(config.tlsCa ? { ca: config.tlsCa as string[] } : {}),
    });
  const agent = new Agent({
    connect: egressConnector({
      policy: o.policy,
      resolve: o.resolver,
      connect: inner,
      resolveTimeoutMs: config.connectTimeoutMs,
      onDenied: o.onDenied,
    }),
    headersTimeout: config.upstreamTimeoutMs,
    bodyTimeout: config.upstreamTimeoutMs,
    maxResponseSize: config.maxResponseBytes,
    keepAliveTimeout: 4_000,
    pipelining: 1,
  });

  const maxResponseBytes = config.maxResponseBytes;
  const bodyBuffer = o.bodyBuffer ?? ((length: number) => Buffer.allocUnsafeSlow(length));

  /** One exchange through undici's dispatcher with a minimal handler: the answer is collected
   * as Buffers and raw headers (no response stream, no header object to convert), and handed to
   * `req.stream` on the way when it is streamed (see `AnswerStream`). A streamed body (its length
   * declared) is copied as it arrives into one buffer of that length, which becomes the record's
   * body: no second copy to join the chunks. Never rejects. */
  function exchange(req: ForwardRequest): Promise<ForwardResult> {
    return new Promise((resolve) => {
      const stream = req.stream;
      let status = 0;
      let raw: Buffer[] = [];
      const chunks: Buffer[] = [];
      let size = 0;
      /** Declared body length; -1: none (or a body that cannot follow). */
      let length = -1;
      /** 0: not (yet) streaming; 1: streaming; 2: never (declined, or nothing to stream to). */
      let streaming = stream === undefined ? 2 : 0;
      let streamed = 0;
      /** The recorded headers, once computed for the streamed head (the record reuses them). */
      let headers: Array<[string, string]> | undefined;
      /** A streamed answer's whole body, filled as it arrives (`size` bytes so far). */
      let body: Buffer | undefined;
      /** The chunk that completed a streamed body (not written: see `AnswerStream`). */
      let rest: Buffer = EMPTY;
      agent.dispatch(
        { origin: req.origin, path: req.path, method: req.method as "GET", headers: req.headers, body: req.body ?? undefined },
        {
          onConnect() {},
          onHeaders(statusCode: number, rawHeaders: Buffer[]) {
            if (statusCode < 200) return true; // informational: the final answer follows
            status = statusCode;
            raw = rawHeaders;
            if (req.method !== "HEAD" && statusCode !== 204 && statusCode !== 304) {
              length = declaredLength(rawHeaders);
              // Refused before any of it is read (undici would only notice past the limit).
              if (length > maxResponseBytes) throw new undiciErrors.ResponseExceededMaxSizeError();
            }
            if (length <= STREAM_AFTER_BYTES) streaming = 2;
            return true;
          },
          onData(chunk: Buffer) {
            if (streaming === 1) {
              // (undici refuses bytes beyond the declared length: the chunk fits)
              chunk.copy(body!, size);
              size += chunk.length;
              // The bytes that complete the body are left to the caller (size === length).
              if (size >= length) rest = chunk;
              else {
                streamed += chunk.length;
                stream!.write(chunk);
              }
              return true;
            }
            chunks.push(chunk);
            size += chunk.length;
            if (streaming === 2 || size >= length) return true;
            if (size > STREAM_AFTER_BYTES) {
              headers = recordedRawHeaders(raw, length);
              if (!stream!.start(status, headers, length)) streaming = 2;
              else {
                streaming = 1;
                streamed = size;
                body = bodyBuffer(length);
                let at = 0;
                for (let i = 0; i < chunks.length; i++) {
                  stream!.write(chunks[i]);
                  at += chunks[i].copy(body, at);
                }
                chunks.length = 0;
              }
            }
            // No back-pressure from the caller: the whole body is kept for the record anyway
            // (bounded by MIRROR_CACHE_MAX_RESPONSE_BYTES), so the upstream is read at its own
            // pace, its connection freed and the record written as soon as it is done.
            return true;
          },
          onComplete() {
            const whole = body ?? (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
            resolve({ ok: true, record: { status, headers: headers ?? recordedRawHeaders(raw, whole.length), body: whole }, streamed, rest });
          },
          onError(err: unknown) {
            const c = classifyUpstreamError(err, req.origin);
            resolve({ ok: false, code: c.code, message: c.message, record: errorRecord(c.code, c.status, c.message), cause: err, streamed });
          },
        } as unknown as Parameters<Agent["dispatch"]>[1],
      );
    });
  }

  return {
    async forward(req) {
      try {
        return await exchange(req);
      } catch (err) {
        // dispatch itself threw (invalid arguments): nothing was sent or streamed
        const c = classifyUpstreamError(err, req.origin);
        return { ok: false, code: c.code, message: c.message, record: errorRecord(c.code, c.status, c.message), cause: err, streamed: 0 };
      }
    },
    close: () => agent.close(),
  };
}
