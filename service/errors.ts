// The error catalogue: every error the service answers with, in one place. Codes are public
// (CONTRACTS.md, README): add, never rename. The README's error table is checked against this file
// by test/service/error-catalogue-matches-readme.test.ts.
//
// `cache` is the `x-mirror-cache` value sent with the error, or `null` for none. No header is a
// deliberate answer: the filter treats a response without `x-mirror-cache` as "the cache failed"
// and applies its failure policy — the test stack fails OPEN (the app's call goes on to its real
// upstream, so a test call is never lost because the mirror machinery failed) and the mirror stack
// fails CLOSED (503 `x-mirror-cache: unavailable`). A header would make the filter hand the error
// to the application instead.

import { STATUS_CODES } from "node:http";

export interface ErrorSpec {
  readonly status: number;
  readonly cache: string | null;
  /** One line for the README's "when" column; the message sent is more specific. */
  readonly when: string;
}

export const ERRORS = Object.freeze({
  MIRROR_CACHE_MISS: {
    status: 504,
    cache: "miss",
    when: "mirror call: no record for its key within MIRROR_CACHE_WAIT_MS",
  },
  EGRESS_DENIED: {
    status: 403,
    cache: "denied",
    when: "test call: the destination (resolved IP, name or the service's own address) is refused by the egress policy; recorded, so the mirror sees it too (as `hit`)",
  },
  INVALID_STACK: {
    status: 400,
    cache: "invalid",
    when: "missing, repeated or unknown stack header value, or one that contradicts the caller's mesh identity",
  },
  INVALID_REQUEST_ID: {
    status: 400,
    cache: "invalid",
    when: "missing, empty or over-long (> 1024 characters) request id header",
  },
  INVALID_AUTHORITY: {
    status: 400,
    cache: "invalid",
    when: "missing or malformed Host / :authority, or a request target that is not a path (the upstream cannot be named)",
  },
  BODY_TOO_LARGE: {
    status: 413,
    cache: null,
    when: "request body over MIRROR_CACHE_MAX_BODY_BYTES (no header: the test stack fails open, the mirror closed); nothing recorded",
  },
  UPSTREAM_TIMEOUT: {
    status: 504,
    cache: "pass",
    when: "test call: connecting to, or waiting for headers or body from, the upstream timed out; recorded (the mirror gets it as `hit`)",
  },
  UPSTREAM_UNAVAILABLE: {
    status: 502,
    cache: "pass",
    when: "test call: the upstream could not be reached (DNS, refused, reset, TLS); recorded (the mirror gets it as `hit`)",
  },
  UPSTREAM_RESPONSE_TOO_LARGE: {
    status: 502,
    cache: "pass",
    when: "test call: the upstream's response body is over MIRROR_CACHE_MAX_RESPONSE_BYTES; recorded (the mirror gets it as `hit`)",
  },
  STORE_UNAVAILABLE: {
    status: 503,
    cache: null,
    when: "the store (Redis) cannot be reached (no header: the test stack fails open, the mirror closed)",
  },
  SHUTTING_DOWN: {
    status: 503,
    cache: null,
    when: "a call that arrives while the service drains for shutdown (no header: the test stack fails open, the mirror closed); sent with Connection: close",
  },
  BAD_REQUEST: {
    status: 400,
    cache: null,
    when: "a request the HTTP layer could not read (e.g. a malformed or ambiguous body framing such as Content-Length with Transfer-Encoding); the connection is closed",
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    cache: null,
    when: "request line and headers over Node's limit (16 KiB by default), answered by the HTTP layer before the call is read; the connection is closed",
  },
  REQUEST_TIMEOUT: {
    status: 408,
    cache: null,
    when: "the request's headers (or body) did not arrive within Node's HTTP server timeouts; the connection is closed",
  },
  INTERNAL_ERROR: {
    status: 500,
    cache: null,
    when: "a bug; logged at error level with the request id",
  },
} satisfies Record<string, ErrorSpec>);

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** An error the service answers with: code from the catalogue plus a specific message. */
export class MirrorCacheError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly cache: string | null;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MirrorCacheError";
    this.code = code;
    const spec: ErrorSpec = ERRORS[code];
    this.status = spec.status;
    this.cache = spec.cache;
  }
}

/** The JSON body of an error answer: `{ "code": "…", "message": "…" }`. */
export function errorBody(code: ErrorCode, message: string): Buffer {
  return Buffer.from(JSON.stringify({ code, message }));
}

/** A whole HTTP/1.1 error answer, for the socket when Node's parser refused the request (there is
 * no ServerResponse then): the catalogue's status and JSON body, `Connection: close`. */
export function rawErrorResponse(code: ErrorCode, message: string): Buffer {
  const spec: ErrorSpec = ERRORS[code];
  const body = errorBody(code, message);
  const head =
    `HTTP/1.1 ${spec.status} ${STATUS_CODES[spec.status] ?? "Error"}\r\n` +
    "content-type: application/json\r\n" +
    `content-length: ${body.length}\r\n` +
    (spec.cache !== null ? `x-mirror-cache: ${spec.cache}\r\n` : "") +
    "connection: close\r\n\r\n";
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}
