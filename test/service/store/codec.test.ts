// The Redis store's record encoding (service/store/codec.ts) on its own: what decodes must be what
// was encoded, on the ASCII fast path and on the UTF-8 path, and a value that is not a whole
// record is refused.
import { describe, expect, it } from "vitest";
import { decodeRecord, encodeRecord } from "../../../service/store/codec.ts";
import type { StoredResponse } from "../../../service/store/types.ts";

function roundtrip(r: StoredResponse): StoredResponse {
  const d = decodeRecord(encodeRecord(r));
  expect(d.status).toBe(r.status);
  expect(d.headers).toEqual(r.headers);
  expect(Buffer.compare(d.body, r.body)).toBe(0);
  return d;
}

const body = Buffer.from([0, 1, 0x7f, 0x80, 0xff, 10, 13]);

describe("record codec", () => {
  it("ascii-headers-roundtrip-including-lengths-whose-bytes-are-over-0x7f", () => {
    // 200- and 40000-byte values: length fields hold bytes ≥ 0x80 while every header byte is ASCII
    roundtrip({
      status: 200,
      headers: [
        ["content-type", "application/octet-stream"],
        ["set-cookie", "a".repeat(200)],
        ["x-big", "v".repeat(40_000)],
        ["x-empty", ""],
        ["", "empty name"],
      ],
      body,
    });
  });

  it("non-ascii-headers-roundtrip-as-utf-8", () => {
    roundtrip({ status: 201, headers: [["content-type", "text/plain"], ["x-unicode", "café ☕ 𝄞"], ["x-latin1", "\u00e9\u00ff"]], body });
  });

  it("one-non-ascii-header-anywhere-decodes-every-header-right", () => {
    roundtrip({ status: 502, headers: [["a", "plain"], ["b", "ünïcode"], ["c", "plain again"]], body });
    roundtrip({ status: 502, headers: [["ä", "x"], ["b", "y"]], body });
  });

  it("no-headers-and-an-empty-body-roundtrip", () => {
    roundtrip({ status: 204, headers: [], body: Buffer.alloc(0) });
  });

  it("the-body-is-every-byte-after-the-headers", () => {
    const big = Buffer.alloc(70_000, 0xab);
    const d = roundtrip({ status: 200, headers: [["x", "y"]], body: big });
    expect(d.body.length).toBe(70_000);
  });

  it("a-bad-version-byte-or-a-truncated-record-is-refused", () => {
    const buf = encodeRecord({ status: 200, headers: [["content-type", "text/plain"]], body });
    expect(() => decodeRecord(Buffer.from("hello"))).toThrow(/bad version/);
    expect(() => decodeRecord(buf.subarray(0, 4))).toThrow(/bad version/);
    expect(() => decodeRecord(buf.subarray(0, 8))).toThrow(/truncated/);
    expect(() => decodeRecord(buf.subarray(0, 5 + 6 + 5))).toThrow(/truncated/);
    // the headers end exactly where the buffer ends: an empty body, not an error
    expect(decodeRecord(buf.subarray(0, buf.length - body.length)).body.length).toBe(0);
  });
});
