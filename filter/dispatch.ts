// The two header translations around the cache call, done on the serialized maps (abi/pairs.ts)
// without decoding them: the request headers that go to the cache, and the cache's answer
// turned into a local reply's headers. Entries are copied as bytes, so any value passes unchanged.
import { toBytes } from "./abi/bytes";
import { PairsView, PairsWriter, bytesEqual } from "./abi/pairs";
import { Config } from "./config";
import { LENGTH_ABSENT, foldContentLength } from "./content-length";

export const CACHE_HEADER = "x-mirror-cache";

const CACHE_NAME = toBytes(CACHE_HEADER);
const CONNECTION = toBytes("connection");
const CONTENT_LENGTH = toBytes("content-length");
const STATUS = toBytes(":status");
// Connection-level headers that do not belong to the message. content-length is recomputed:
// Envoy sets it for the dispatched body and for the local reply's body.
const HOP_BY_HOP: ArrayBuffer[] = [
  CONNECTION, toBytes("keep-alive"), toBytes("proxy-connection"), toBytes("transfer-encoding"),
  toBytes("upgrade"), toBytes("te"), toBytes("trailer"), CONTENT_LENGTH,
];

/** The configured names and the stack header's value, as bytes (made once per configuration). */
export class Tagging {
  stackHeader: ArrayBuffer;
  stackValue: ArrayBuffer;
  requestIdHeader: ArrayBuffer;
  cacheCluster: ArrayBuffer;

  constructor(c: Config) {
    this.cacheCluster = toBytes(c.cacheCluster);
    this.stackHeader = toBytes(c.stackHeader);
    this.stackValue = toBytes(c.stackValue);
    this.requestIdHeader = toBytes(c.requestIdHeader);
  }
}

/** What the filter needs from the request headers. */
export class RequestScan {
  /** The first request id header is there and not empty (Envoy's get gives the first). */
  hasRequestId: bool = false;
  /** The app sent the stack header (every copy is removed). */
  spoofed: bool = false;
  /** Declared body size: LENGTH_ABSENT, LENGTH_INVALID or the value (content-length.ts). */
  contentLength: f64 = LENGTH_ABSENT;
  /** Some `connection` header may list more hop-by-hop names. */
  connection: bool = false;

  /** Fills this from `request` (rewound first). */
  scan(request: PairsView, t: Tagging): void {
    this.hasRequestId = false;
    this.spoofed = false;
    this.contentLength = LENGTH_ABSENT;
    this.connection = false;
    let haveRequestId = false;
    request.rewind();
    while (request.next()) {
      if (!haveRequestId && request.nameIs(t.requestIdHeader)) {
        this.hasRequestId = request.valueSize > 0;
        haveRequestId = true;
      } else if (request.nameIs(t.stackHeader)) {
        this.spoofed = true;
      } else if (request.nameIs(CONTENT_LENGTH)) {
        this.contentLength = foldContentLength(this.contentLength, request.valuePtr, request.valueSize);
      }
      if (request.nameIs(CONNECTION)) this.connection = true;
    }
  }
}

/** Writes the request headers for the cache call into `out`: pseudo-headers and end-to-end
 * headers in order, without the app's stack header, then ours. `connection`: RequestScan's. */
export function writeCacheRequest(request: PairsView, t: Tagging, connection: bool, out: PairsWriter): void {
  out.begin(request.count + 1);
  request.rewind();
  while (request.next()) {
    if (!request.nameIs(t.stackHeader) && !dropped(request, connection)) out.addEntry(request);
  }
  out.addBytes(t.stackHeader, t.stackValue);
}

/** Writes the local reply's headers for the cache's answer into `out` (no pseudo-headers, no
 * hop-by-hop headers) and returns its :status, or -1 when the response is not from the cache
 * (no x-mirror-cache: Envoy's own 503/504 for an unreachable or slow cluster) or has no usable
 * :status. */
export function writeCacheAnswer(response: PairsView, out: PairsWriter): i32 {
  let status: i32 = -1;
  let fromCache = false;
  let connection = false;
  response.rewind();
  while (response.next()) {
    if (response.nameIs(CONNECTION)) connection = true;
  }
  out.begin(response.count);
  response.rewind();
  while (response.next()) {
    const name = response.namePtr;
    if (response.nameSize > 0 && load<u8>(name) == 0x3A) { // ':'
      if (response.nameSize == 7 && bytesEqual(name, 7, STATUS)) status = parseStatus(response.valuePtr, response.valueSize);
      continue;
    }
    if (dropped(response, connection)) continue;
    if (response.nameIs(CACHE_NAME)) fromCache = true;
    out.addEntry(response);
  }
  return fromCache ? status : -1;
}

/** Is the view's current entry connection-level (hop-by-hop, or named by a `connection` header)? */
function dropped(view: PairsView, connection: bool): bool {
  return isHopByHop(view.namePtr, view.nameSize) || (connection && connectionListed(view));
}

function isHopByHop(name: usize, size: usize): bool {
  // Most names are ruled out by their size or a leading ':' (pseudo-headers).
  if (size != 2 && size != 7 && size != 10 && size != 14 && size != 16 && size != 17) return false;
  if (load<u8>(name) == 0x3A) return false;
  for (let i = 0; i < HOP_BY_HOP.length; i++) {
    if (bytesEqual(name, size, unchecked(HOP_BY_HOP[i]))) return true;
  }
  return false;
}

/** A second cursor for connectionListed (rare: a request or answer with a `connection` header). */
const listing = new PairsView();

/** Does a `connection` header list the current entry's name? Its value is a comma-separated
 * list; each element is trimmed and compared in ASCII lower case, as `String#trim` and
 * asciiLowerCase did on the byte string. */
function connectionListed(view: PairsView): bool {
  const name = view.namePtr;
  const nameSize = view.nameSize;
  if (nameSize == 0) return false;
  listing.reset(view.ptr, view.size);
  while (listing.next()) {
    if (!listing.nameIs(CONNECTION)) continue;
    const end = listing.valuePtr + listing.valueSize;
    let start = listing.valuePtr;
    for (let p = start; p <= end; p++) {
      if (p < end && load<u8>(p) != 0x2C) continue; // ','
      let from = start;
      let to = p;
      while (from < to && isSpace(load<u8>(from))) from++;
      while (to > from && isSpace(load<u8>(to - 1))) to--;
      if (to - from == nameSize && equalsLowered(from, name, nameSize)) return true;
      start = p + 1;
    }
  }
  return false;
}

/** String#trim's white space among single bytes: TAB, LF, VT, FF, CR, SP, NBSP. */
function isSpace(c: u8): bool {
  return c == 0x20 || c == 0xA0 || (c >= 0x09 && c <= 0x0D);
}

/** Do `size` bytes at `a`, ASCII-lower-cased, equal those at `b`? */
function equalsLowered(a: usize, b: usize, size: usize): bool {
  for (let i: usize = 0; i < size; i++) {
    let c = load<u8>(a + i);
    if (c >= 0x41 && c <= 0x5A) c += 0x20;
    if (c != load<u8>(b + i)) return false;
  }
  return true;
}

function parseStatus(ptr: usize, size: usize): i32 {
  if (size != 3) return -1;
  let v = 0;
  for (let i: usize = 0; i < 3; i++) {
    const c = <i32>load<u8>(ptr + i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v >= 200 && v <= 599 ? v : -1;
}
