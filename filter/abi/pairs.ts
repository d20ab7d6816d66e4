// Header-map ("pairs") encoding, contract.md §5:
//   u32 count, count × (u32 name size, u32 value size), then each name and value followed by NUL.
// Names and values are byte strings (bytes.ts).
import { byteLength, readString, writeString } from "./bytes";

export class Header {
  constructor(public name: string, public value: string) {}
}

export function serializePairs(headers: Header[]): ArrayBuffer {
  const n = headers.length;
  let size: usize = 4 + 8 * <usize>n;
  for (let i = 0; i < n; i++) {
    const h = unchecked(headers[i]);
    size += byteLength(h.name) + byteLength(h.value) + 2;
  }
  const buf = new ArrayBuffer(<i32>size);
  const base = changetype<usize>(buf);
  store<u32>(base, <u32>n);
  let sizes = base + 4;
  let data = base + 4 + 8 * <usize>n;
  for (let i = 0; i < n; i++) {
    const h = unchecked(headers[i]);
    const nameSize = writeString(h.name, data);
    data += nameSize;
    store<u8>(data++, 0);
    const valueSize = writeString(h.value, data);
    data += valueSize;
    store<u8>(data++, 0);
    store<u32>(sizes, <u32>nameSize);
    store<u32>(sizes + 4, <u32>valueSize);
    sizes += 8;
  }
  return buf;
}

/** Decodes `size` bytes at `ptr`. Both empty forms (size 0, or a lone count of 0) give [].
 * Returns null when the data is malformed (sizes running past the end, a count that cannot fit). */
export function deserializePairs(ptr: usize, size: usize): Header[] | null {
  const out = new Array<Header>();
  if (size == 0) return out;
  if (size < 4) return null;
  const n = <u64>load<u32>(ptr);
  // u64 arithmetic: a hostile count or size must not wrap around.
  const end = <u64>ptr + <u64>size;
  let sizes = <u64>ptr + 4;
  let data = sizes + 8 * n;
  if (data > end) return null;
  for (let i: u64 = 0; i < n; i++) {
    const nameSize = <u64>load<u32>(<usize>sizes);
    const valueSize = <u64>load<u32>(<usize>(sizes + 4));
    sizes += 8;
    if (data + nameSize + valueSize + 2 > end) return null;
    const name = readString(<usize>data, <usize>nameSize);
    data += nameSize + 1;
    const value = readString(<usize>data, <usize>valueSize);
    data += valueSize + 1;
    out.push(new Header(name, value));
  }
  return out;
}
