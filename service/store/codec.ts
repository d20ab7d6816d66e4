// Binary encoding of a StoredResponse as one Redis value (one GET, one SET, no JSON, no base64).
//
//   u8  version (1)
//   u16 status
//   u16 header count
//   per header: u16 name bytes, u32 value bytes, name (UTF-8), value (UTF-8)
//   body: every remaining byte
//
// Integers are big-endian. Decoding copies nothing but the header strings: the body is a view
// into the value Buffer.
import type { StoredResponse } from "./types.ts";

const VERSION = 1;

export function encodeRecord(value: StoredResponse): Buffer {
  const headers = value.headers;
  if (headers.length > 0xffff) throw new RangeError(`too many headers to store (${headers.length})`);
  let size = 5;
  const lens = new Array<number>(headers.length * 2);
  for (let i = 0; i < headers.length; i++) {
    const n = Buffer.byteLength(headers[i][0], "utf8");
    const v = Buffer.byteLength(headers[i][1], "utf8");
    if (n > 0xffff) throw new RangeError("header name too long to store");
    lens[2 * i] = n;
    lens[2 * i + 1] = v;
    size += 6 + n + v;
  }
  const body = value.body;
  const buf = Buffer.allocUnsafe(size + body.length);
  buf[0] = VERSION;
  buf.writeUInt16BE(value.status, 1);
  buf.writeUInt16BE(headers.length, 3);
  let off = 5;
  for (let i = 0; i < headers.length; i++) {
    const n = lens[2 * i];
    const v = lens[2 * i + 1];
    buf.writeUInt16BE(n, off);
    buf.writeUInt32BE(v, off + 2);
    off += 6;
    off += buf.write(headers[i][0], off, n, "utf8");
    off += buf.write(headers[i][1], off, v, "utf8");
  }
  body.copy(buf, off);
  return buf;
}

export function decodeRecord(buf: Buffer): StoredResponse {
  const len = buf.length;
  if (len < 5 || buf[0] !== VERSION) throw new Error("not a mesh-mirror record (bad version byte)");
  const status = (buf[1] << 8) | buf[2];
  const count = (buf[3] << 8) | buf[4];
  // First pass: check the lengths, find the body, and see whether every header byte is ASCII.
  let off = 5;
  let high = 0;
  for (let i = 0; i < count; i++) {
    if (off + 6 > len) throw new Error("truncated mesh-mirror record");
    const n = (buf[off] << 8) | buf[off + 1];
    const v = buf.readUInt32BE(off + 2);
    off += 6;
    const end = off + n + v;
    if (end > len) throw new Error("truncated mesh-mirror record");
    for (let j = off; j < end; j++) high |= buf[j];
    off = end;
  }
  const headers: Array<[string, string]> = new Array(count);
  // ASCII (the usual case): one native decode of the whole header block, then string slices
  // (a byte offset is a character offset). A decode per name and value costs ~2.5× as much.
  const block = high < 0x80 ? buf.toString("latin1", 0, off) : undefined;
  let p = 5;
  for (let i = 0; i < count; i++) {
    const n = (buf[p] << 8) | buf[p + 1];
    const v = buf.readUInt32BE(p + 2);
    p += 6;
    const a = p + n;
    const b = a + v;
    headers[i] = block !== undefined ? [block.slice(p, a), block.slice(a, b)] : [buf.toString("utf8", p, a), buf.toString("utf8", a, b)];
    p = b;
  }
  return { status, headers, body: buf.subarray(off) };
}
