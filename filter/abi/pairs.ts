// Header-map ("pairs") encoding, contract.md §5:
//   u32 count, count × (u32 name size, u32 value size), then each name and value followed by NUL.
// Names and values are byte strings (bytes.ts). Header[] (serializePairs / deserializePairs) is
// the convenient form; PairsView / PairsWriter below work on the encoding itself.
import { byteLength, readBytes, readString, writeString } from "./bytes";

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
  const view = new PairsView();
  if (!view.reset(ptr, size)) return null;
  const out = new Array<Header>();
  while (view.next()) out.push(new Header(view.name(), view.value()));
  return out;
}

// ---- raw access: no strings, no per-entry allocation ------------------------------------------
//
// For hot paths that only look at a few names and copy the rest through: PairsView walks a
// serialized map in place (typically the host's buffer from proxy_get_header_map_pairs) and
// PairsWriter builds a serialized map in one reused, growable scratch area. Entries are bytes,
// copied as they are (byte-faithful for any value). Compare names with `PairsView.nameIs`
// against patterns made once with `toBytes` (bytes.ts).

/** Do `size` bytes at `ptr` equal `pattern`? */
export function bytesEqual(ptr: usize, size: usize, pattern: ArrayBuffer): bool {
  return size == <usize>pattern.byteLength && (size == 0 || memory.compare(ptr, changetype<usize>(pattern), size) == 0);
}

/** A cursor over a serialized map. `reset` validates the whole buffer once (the same checks as
 * deserializePairs), so `next` needs none. A view can own a host-allocated buffer: `release`
 * (or the next `reset`) frees it. Reuse one view rather than allocating one per call. */
export class PairsView {
  /** Entries in the buffer; 0 for an empty or rejected buffer. */
  count: u32 = 0;
  /** The current entry, after `next` returned true. */
  namePtr: usize = 0;
  nameSize: usize = 0;
  valuePtr: usize = 0;
  valueSize: usize = 0;
  /** The buffer viewed (0 and 0 when empty). */
  ptr: usize = 0;
  size: usize = 0;
  private owned: bool = false;
  private index: u32 = 0;
  private sizesAt: usize = 0;
  private dataAt: usize = 0;

  /** Views `size` bytes at `ptr`; `owned`: a host buffer that `release` frees. False (and an
   * empty view, the buffer already freed when owned) when the data is malformed. */
  reset(ptr: usize, size: usize, owned: bool = false): bool {
    this.release();
    this.ptr = ptr;
    this.size = size;
    this.owned = owned && ptr != 0;
    if (size == 0) return true;
    if (size < 4) {
      this.release();
      return false;
    }
    const n = <u64>load<u32>(ptr);
    // u64 arithmetic: a hostile count or size must not wrap around.
    const end = <u64>ptr + <u64>size;
    let sizes = <u64>ptr + 4;
    let data = sizes + 8 * n;
    if (data > end) {
      this.release();
      return false;
    }
    for (let i: u64 = 0; i < n; i++) {
      data += <u64>load<u32>(<usize>sizes) + <u64>load<u32>(<usize>(sizes + 4)) + 2;
      sizes += 8;
      if (data > end) {
        this.release();
        return false;
      }
    }
    this.count = <u32>n;
    this.rewind();
    return true;
  }

  /** Back before the first entry. */
  rewind(): void {
    this.index = 0;
    this.sizesAt = this.ptr + 4;
    this.dataAt = this.ptr + 4 + 8 * <usize>this.count;
  }

  /** Moves to the next entry; false past the last. */
  next(): bool {
    if (this.index >= this.count) return false;
    const nameSize = <usize>load<u32>(this.sizesAt);
    const valueSize = <usize>load<u32>(this.sizesAt + 4);
    this.namePtr = this.dataAt;
    this.nameSize = nameSize;
    this.valuePtr = this.dataAt + nameSize + 1;
    this.valueSize = valueSize;
    this.dataAt += nameSize + valueSize + 2;
    this.sizesAt += 8;
    this.index++;
    return true;
  }

  nameIs(pattern: ArrayBuffer): bool {
    return bytesEqual(this.namePtr, this.nameSize, pattern);
  }

  /** The current name / value as a byte string (allocates: for logging and rare paths). */
  name(): string {
    return readString(this.namePtr, this.nameSize);
  }

  value(): string {
    return readString(this.valuePtr, this.valueSize);
  }

  /** Frees an owned buffer; the view is then empty. */
  release(): void {
    if (this.owned) heap.free(this.ptr);
    this.owned = false;
    this.ptr = 0;
    this.size = 0;
    this.count = 0;
    this.rewind();
  }
}

/** Builds a serialized map in an unmanaged scratch area that is kept and grown, never shrunk:
 * `begin`, `add*`, then pass `ptr`/`size` to the host (valid until the next `begin`), or keep
 * a copy with `toArrayBuffer`. */
export class PairsWriter {
  private base: usize = 0;
  private capacity: usize = 0;
  /** Entries written, and entries whose size slots are reserved in front of the data. */
  private count: u32 = 0;
  private slots: u32 = 0;
  /** End of the data written so far (offset from base). */
  private end: usize = 0;

  /** Starts a new map with room for `expected` entries before the data has to move. */
  begin(expected: u32 = 16): void {
    this.count = 0;
    this.slots = max<u32>(expected, 1);
    this.end = 4 + 8 * <usize>this.slots;
    this.ensure(this.end);
  }

  /** Appends one entry from raw bytes. */
  add(namePtr: usize, nameSize: usize, valuePtr: usize, valueSize: usize): void {
    if (this.count == this.slots) this.moreSlots();
    this.ensure(this.end + nameSize + valueSize + 2);
    const slot = this.base + 4 + 8 * <usize>this.count;
    store<u32>(slot, <u32>nameSize);
    store<u32>(slot + 4, <u32>valueSize);
    let p = this.base + this.end;
    memory.copy(p, namePtr, nameSize);
    store<u8>(p + nameSize, 0);
    p += nameSize + 1;
    memory.copy(p, valuePtr, valueSize);
    store<u8>(p + valueSize, 0);
    this.end += nameSize + valueSize + 2;
    this.count++;
  }

  /** Appends the view's current entry. */
  addEntry(view: PairsView): void {
    this.add(view.namePtr, view.nameSize, view.valuePtr, view.valueSize);
  }

  addBytes(name: ArrayBuffer, value: ArrayBuffer): void {
    this.add(changetype<usize>(name), <usize>name.byteLength, changetype<usize>(value), <usize>value.byteLength);
  }

  /** The finished map (unused size slots squeezed out). Valid until the next `begin`/`add`. */
  get ptr(): usize {
    this.finish();
    return this.base;
  }

  get size(): usize {
    this.finish();
    return this.end;
  }

  /** Entries written since `begin`. */
  get length(): u32 {
    return this.count;
  }

  /** A managed copy of the finished map. */
  toArrayBuffer(): ArrayBuffer {
    return readBytes(this.ptr, this.size);
  }

  private finish(): void {
    if (this.slots > this.count) this.moveData(this.count);
    store<u32>(this.base, this.count);
  }

  private moreSlots(): void {
    this.moveData(max<u32>(this.slots * 2, 8));
  }

  /** Moves the data so that exactly `slots` size slots precede it. */
  private moveData(slots: u32): void {
    const from: usize = 4 + 8 * <usize>this.slots;
    const to: usize = 4 + 8 * <usize>slots;
    const dataSize = this.end - from;
    this.ensure(to + dataSize);
    memory.copy(this.base + to, this.base + from, dataSize);
    this.slots = slots;
    this.end = to + dataSize;
  }

  private ensure(size: usize): void {
    if (size <= this.capacity) return;
    let capacity = max<usize>(this.capacity * 2, 512);
    while (capacity < size) capacity *= 2;
    this.base = this.base == 0 ? heap.alloc(capacity) : heap.realloc(this.base, capacity);
    this.capacity = capacity;
  }
}
