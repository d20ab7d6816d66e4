// Header-map ("pairs") serialization, contract.md §5:
//   u32 N | N × (u32 key_len, u32 value_len) | N × (key, 0x00, value, 0x00), little-endian.
//
// These run on every header-map host call, so they work on raw bytes: ASCII strings are
// encoded with a plain loop (no call into C++ per string), short ASCII strings read back from
// module memory are interned (header names and common values repeat on every request), and
// sizes are computed once into a reused scratch table.
import type { Header, HeadersInput } from "./types.ts";

/** Host-side parsing limits (cpp-host pairs_util): beyond them the input counts as an empty map. */
export const MAX_PAIRS_BYTES = 1 << 20;
export const MAX_PAIRS_COUNT = 1024;

// ---- strings <-> bytes -------------------------------------------------------------------------

type SliceBuffer = Buffer & { latin1Slice?(start: number, end: number): string; utf8Slice?(start: number, end: number): string };
const HAS_SLICES = typeof (Buffer.prototype as SliceBuffer).latin1Slice === "function" && typeof (Buffer.prototype as SliceBuffer).utf8Slice === "function";

/** UTF-8 byte length; a loop over char codes for ASCII (no native call), Buffer.byteLength otherwise. */
export function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, "utf8");
  return n;
}

/** Write `s` as UTF-8 at `p` (room for utf8Length(s) bytes checked by the caller); returns bytes written. */
export function writeUtf8(out: Buffer, s: string, p: number): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return out.write(s, p, "utf8");
    out[p + i] = c;
  }
  return n;
}

const INTERN_MAX = 64;
const INTERN_SLOTS = 4096; // power of two
const interned: Array<string | undefined> = new Array(INTERN_SLOTS).fill(undefined);

/**
 * buf[start, end) as UTF-8 text, exactly what `buf.toString("utf8", start, end)` returns. Short
 * ASCII strings come from a small intern table when the same bytes were decoded before.
 */
export function readUtf8(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n === 0) return "";
  if (n > INTERN_MAX || !HAS_SLICES) return buf.toString("utf8", start, end);
  let h = n;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c > 0x7f) return (buf as SliceBuffer).utf8Slice!(start, end);
    h = Math.imul(h ^ c, 16777619);
  }
  const slot = (h ^ (h >>> 16)) & (INTERN_SLOTS - 1);
  const s = interned[slot];
  if (s !== undefined && s.length === n) {
    let i = 0;
    while (i < n && s.charCodeAt(i) === buf[start + i]) i++;
    if (i === n) return s;
  }
  const r = (buf as SliceBuffer).latin1Slice!(start, end); // pure ASCII: latin1 = UTF-8
  interned[slot] = r;
  return r;
}

function readU32(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}
function writeU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
}

// ---- pairs -------------------------------------------------------------------------------------

/** Byte lengths of the last pairsSize() call: [k0, v0, k1, v1, …] (reused, grows on demand). */
let lens = new Int32Array(64);
let lensFor: readonly Header[] | null = null;

/** Bytes needed to serialize `pairs`; remembers the string lengths for the encodePairsInto that follows. */
export function pairsSize(pairs: readonly Header[]): number {
  const n = pairs.length;
  if (lens.length < 2 * n) lens = new Int32Array(Math.max(2 * n, 2 * lens.length));
  let size = 4 + 10 * n;
  for (let i = 0; i < n; i++) {
    const h = pairs[i];
    const kl = utf8Length(h[0]);
    const vl = utf8Length(h[1]);
    lens[2 * i] = kl;
    lens[2 * i + 1] = vl;
    size += kl + vl;
  }
  lensFor = pairs;
  return size;
}

/** Serialize into `out` at `offset` (out must hold pairsSize bytes); returns bytes written. */
export function encodePairsInto(pairs: readonly Header[], out: Buffer, offset: number): number {
  const n = pairs.length;
  // The lengths table is only trusted right after pairsSize() of this very list.
  if (lensFor !== pairs) pairsSize(pairs);
  lensFor = null;
  writeU32(out, offset, n);
  let sizes = offset + 4;
  let data = sizes + n * 8;
  for (let i = 0; i < n; i++) {
    const h = pairs[i];
    const kl = lens[2 * i];
    const vl = lens[2 * i + 1];
    writeU32(out, sizes, kl);
    writeU32(out, sizes + 4, vl);
    sizes += 8;
    writeUtf8(out, h[0], data);
    data += kl;
    out[data++] = 0;
    writeUtf8(out, h[1], data);
    data += vl;
    out[data++] = 0;
  }
  return data - offset;
}

export function encodePairs(pairs: readonly Header[]): Uint8Array {
  const out = Buffer.alloc(pairsSize(pairs));
  encodePairsInto(pairs, out, 0);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * Parse a pairs buffer the way cpp-host does: size 0 or a lone count of 0 is an empty map;
 * input over the limits, truncated, or missing NULs gives an empty map, not an error (§5).
 */
export function decodePairs(bytes: Uint8Array): Header[] {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return decodePairsAt(b, 0, b.length);
}

/** decodePairs over buf[start, start+size) without copying (used on module memory). */
export function decodePairsAt(buf: Buffer, start: number, size: number): Header[] {
  if (size < 4 || size > MAX_PAIRS_BYTES || start + size > buf.length) return [];
  const end = start + size;
  const n = readU32(buf, start);
  if (n === 0 || n > MAX_PAIRS_COUNT) return [];
  let sizes = start + 4;
  let data = sizes + n * 8;
  if (data > end) return [];
  // One pass: any defect (truncated, missing NUL) makes the whole map empty, as in cpp-host.
  const out: Header[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const kl = readU32(buf, sizes);
    const vl = readU32(buf, sizes + 4);
    sizes += 8;
    const kEnd = data + kl;
    const vEnd = kEnd + 1 + vl;
    if (vEnd + 1 > end || buf[kEnd] !== 0 || buf[vEnd] !== 0) return [];
    out[i] = [readUtf8(buf, data, kEnd), readUtf8(buf, kEnd + 1, vEnd)];
    data = vEnd + 1;
  }
  return out;
}

/** Normalize user input to a header list with lower-cased names, as Envoy stores them (§5). */
export function toHeaderList(input: HeadersInput | undefined): Header[] {
  if (!input) return [];
  const entries = Array.isArray(input) ? input : Object.entries(input);
  const n = entries.length;
  const out: Header[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    const k = e[0], v = e[1];
    out[i] = [(typeof k === "string" ? k : String(k)).toLowerCase(), typeof v === "string" ? v : String(v)];
  }
  return out;
}

/** Envoy's HeaderMap::byteSize: Σ key + value lengths (what proxy_get_header_map_size returns). */
export function headerByteSize(map: readonly Header[]): number {
  let n = 0;
  for (let i = 0; i < map.length; i++) n += utf8Length(map[i][0]) + utf8Length(map[i][1]);
  return n;
}

export function getFirst(map: readonly Header[], key: string): string | undefined {
  for (let i = 0; i < map.length; i++) if (map[i][0] === key) return map[i][1];
  return undefined;
}

export function removeAll(map: Header[], key: string): void {
  let w = 0;
  for (let r = 0; r < map.length; r++) if (map[r][0] !== key) map[w++] = map[r];
  map.length = w;
}

/** Envoy setCopy: replace the first entry's value in place and drop the other entries of that key. */
export function has(map: readonly Header[], key: string): boolean {
  for (let i = 0; i < map.length; i++) if (map[i][0] === key) return true;
  return false;
}

export function replaceValue(map: Header[], key: string, value: string): void {
  let i = -1;
  for (let j = 0; j < map.length; j++) if (map[j][0] === key) { i = j; break; }
  if (i < 0) {
    map.push([key, value]);
    return;
  }
  map[i] = [key, value];
  let w = i + 1;
  for (let r = i + 1; r < map.length; r++) if (map[r][0] !== key) map[w++] = map[r];
  map.length = w;
}
