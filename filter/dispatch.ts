// The two header translations around the cache call: the request headers that go to the
// cache, and the cache's answer turned into a local reply.
import { asciiLowerCase } from "./abi/bytes";
import { Header } from "./abi/pairs";

export const CACHE_HEADER = "x-mirror-cache";

// Connection-level headers that do not belong to the message. content-length is recomputed:
// Envoy sets it for the dispatched body and for the local reply's body.
function isHopByHop(name: string): bool {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" || name == "transfer-encoding" ||
    name == "upgrade" || name == "te" || name == "trailer" || name == "content-length";
}

/** Header names a `connection` header lists as hop-by-hop too (rare: usually none). */
function connectionListed(headers: Header[]): string[] {
  const names = new Array<string>();
  for (let i = 0; i < headers.length; i++) {
    const h = unchecked(headers[i]);
    if (h.name != "connection") continue;
    const listed = h.value.split(",");
    for (let j = 0; j < listed.length; j++) {
      const name = asciiLowerCase(unchecked(listed[j]).trim());
      if (name.length > 0) names.push(name);
    }
  }
  return names;
}

function dropped(name: string, listed: string[]): bool {
  return isHopByHop(name) || (listed.length > 0 && listed.includes(name));
}

/** The request headers for the cache call: pseudo-headers and end-to-end headers, in order,
 * without `exclude` (the stack header, which the caller sets itself). */
export function cacheRequestHeaders(request: Header[], exclude: string): Header[] {
  const listed = connectionListed(request);
  const out = new Array<Header>();
  for (let i = 0; i < request.length; i++) {
    const h = unchecked(request[i]);
    if (h.name != exclude && !dropped(h.name, listed)) out.push(h);
  }
  return out;
}

export class CacheAnswer {
  constructor(public status: u32, public headers: Header[]) {}
}

/** The cache's answer, or null when the response is not from the cache (no x-mirror-cache:
 * Envoy's own 503/504 for an unreachable or slow cluster) or has no usable :status. */
export function cacheAnswer(response: Header[]): CacheAnswer | null {
  let status: i32 = -1;
  let fromCache = false;
  const listed = connectionListed(response);
  const headers = new Array<Header>();
  for (let i = 0; i < response.length; i++) {
    const h = unchecked(response[i]);
    if (h.name == ":status") status = parseStatus(h.value);
    else if (h.name.startsWith(":") || dropped(h.name, listed)) continue;
    else {
      if (h.name == CACHE_HEADER) fromCache = true;
      headers.push(h);
    }
  }
  if (!fromCache || status < 0) return null;
  return new CacheAnswer(<u32>status, headers);
}

function parseStatus(s: string): i32 {
  if (s.length != 3) return -1;
  let v = 0;
  for (let i = 0; i < 3; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v >= 200 && v <= 599 ? v : -1;
}
