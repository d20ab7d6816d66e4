// Header-map ("pairs") serialization, contract.md §5:
//   u32 N | N × (u32 key_len, u32 value_len) | N × (key, 0x00, value, 0x00), little-endian.
import type { Header, HeadersInput } from "./types.ts";

/** Host-side parsing limits (cpp-host pairs_util): beyond them the input counts as an empty map. */
export const MAX_PAIRS_BYTES = 1 << 20;
export const MAX_PAIRS_COUNT = 1024;

/** Bytes needed to serialize `pairs` (Buffer.byteLength avoids building the encoding twice). */
export function pairsSize(pairs: readonly Header[]): number {
  let n = 4;
  for (const [k, v] of pairs) n += 10 + Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

/** Serialize into `out` at `offset` (out must hold pairsSize bytes); returns bytes written. */
export function encodePairsInto(pairs: readonly Header[], out: Buffer, offset: number): number {
  out.writeUInt32LE(pairs.length, offset);
  let sizes = offset + 4;
  let data = sizes + pairs.length * 8;
  for (const [k, v] of pairs) {
    const kl = out.write(k, data, "utf8");
    out[data + kl] = 0;
    const vl = out.write(v, data + kl + 1, "utf8");
    out[data + kl + 1 + vl] = 0;
    out.writeUInt32LE(kl, sizes);
    out.writeUInt32LE(vl, sizes + 4);
    sizes += 8;
    data += kl + vl + 2;
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
  const n = buf.readUInt32LE(start);
  if (n === 0 || n > MAX_PAIRS_COUNT) return [];
  let sizes = start + 4;
  let data = sizes + n * 8;
  if (data > end) return [];
  const out: Header[] = [];
  for (let i = 0; i < n; i++) {
    const kl = buf.readUInt32LE(sizes);
    const vl = buf.readUInt32LE(sizes + 4);
    sizes += 8;
    if (data + kl + vl + 2 > end) return [];
    if (buf[data + kl] !== 0 || buf[data + kl + 1 + vl] !== 0) return [];
    out.push([buf.toString("utf8", data, data + kl), buf.toString("utf8", data + kl + 1, data + kl + 1 + vl)]);
    data += kl + vl + 2;
  }
  return out;
}

/** Normalize user input to a header list with lower-cased names, as Envoy stores them (§5). */
export function toHeaderList(input: HeadersInput | undefined): Header[] {
  if (!input) return [];
  const entries = Array.isArray(input) ? input : Object.entries(input);
  const out: Header[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) out[i] = [String(entries[i][0]).toLowerCase(), String(entries[i][1])];
  return out;
}

/** Envoy's HeaderMap::byteSize: Σ key + value lengths (what proxy_get_header_map_size returns). */
export function headerByteSize(map: readonly Header[]): number {
  let n = 0;
  for (const [k, v] of map) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

export function getFirst(map: readonly Header[], key: string): string | undefined {
  for (const h of map) if (h[0] === key) return h[1];
  return undefined;
}

export function removeAll(map: Header[], key: string): void {
  let w = 0;
  for (let r = 0; r < map.length; r++) if (map[r][0] !== key) map[w++] = map[r];
  map.length = w;
}

/** Envoy setCopy: replace the first entry's value in place and drop the other entries of that key. */
export function has(map: readonly Header[], key: string): boolean {
  for (const h of map) if (h[0] === key) return true;
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
