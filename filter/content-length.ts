// The request's declared body size (`content-length`), read at the headers so that a body the
// filter will not buffer is never held at all.
//
// Why at the headers: Envoy appends each body chunk to the buffered body (addDecodedData) and checks
// the connection buffer limit BEFORE on_request_body runs. A filter that buffers up to exactly
// max_body_bytes while that equals the buffer limit (both 1 MiB by default) never sees the chunk
// that overflows: Envoy answers 413 itself and the test call is lost. Deciding from content-length
// avoids buffering such a body in the first place; a chunked body (no content-length) is still
// checked chunk by chunk in on_request_body, which is why the deployment keeps the listener's
// per_connection_buffer_limit_bytes well above max_body_bytes (README, envoy/).

/** No content-length header. */
export const LENGTH_ABSENT: f64 = -1;
/** A content-length that cannot be trusted: not a number, or several values that disagree. */
export const LENGTH_INVALID: f64 = -2;
// Larger values are all "too large"; capping keeps the arithmetic exact.
const LENGTH_CAP: f64 = 1e15;

/** One `1*DIGIT` element in bytes [from, to) (OWS around it trimmed), capped at LENGTH_CAP;
 * LENGTH_INVALID if not. */
function parseElement(from: usize, to: usize): f64 {
  while (from < to && isOws(load<u8>(from))) from++;
  while (to > from && isOws(load<u8>(to - 1))) to--;
  if (from >= to) return LENGTH_INVALID;
  let n: f64 = 0;
  for (let p = from; p < to; p++) {
    const c = <i32>load<u8>(p);
    if (c < 0x30 || c > 0x39) return LENGTH_INVALID;
    n = n * 10 + <f64>(c - 0x30);
    if (n > LENGTH_CAP) n = LENGTH_CAP;
  }
  return n;
}

function isOws(c: u8): bool {
  return c == 0x20 || c == 0x09;
}

/** Folds one content-length header value (`size` bytes at `ptr`; possibly a comma-separated
 * list, RFC 9110 §8.6) into `current` (LENGTH_ABSENT before the first value): identical values
 * collapse, any bad element or any disagreement gives LENGTH_INVALID. */
export function foldContentLength(current: f64, ptr: usize, size: usize): f64 {
  if (current == LENGTH_INVALID) return LENGTH_INVALID;
  let out = current;
  let start = ptr;
  const end = ptr + size;
  for (let p = ptr; p <= end; p++) {
    if (p < end && load<u8>(p) != 0x2C) continue;
    const v = parseElement(start, p);
    if (v == LENGTH_INVALID) return LENGTH_INVALID;
    if (out != LENGTH_ABSENT && out != v) return LENGTH_INVALID;
    out = v;
    start = p + 1;
  }
  return out;
}
