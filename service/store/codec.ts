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
  if (buf.length < 5 || buf[0] !== VERSION) throw new Error("not a mesh-mirror record (bad version byte)");
  const status = buf.readUInt16BE(1);
  const count = buf.readUInt16BE(3);
  const headers: Array<[string, string]> = new Array(count);
  let off = 5;
  for (let i = 0; i < count; i++) {
    if (off + 6 > buf.length) throw new Error("truncated mesh-mirror record");
    const n = buf.readUInt16BE(off);
    const v = buf.readUInt32BE(off + 2);
    off += 6;
    if (off + n + v > buf.length) throw new Error("truncated mesh-mirror record");
    const name = buf.toString("utf8", off, off + n);
    off += n;
    const val = buf.toString("utf8", off, off + v);
    off += v;
    headers[i] = [name, val];
  }
  return { status, headers, body: buf.subarray(off) };
}
