// Byte strings and host-owned memory.
//
// Header values, properties and bodies are bytes, not necessarily UTF-8. The runtime
// represents them as *byte strings*: one UTF-16 code unit per byte (0x00–0xFF), so any
// byte sequence survives a round trip through a `string` unchanged and ASCII compares
// as usual. When a string is written to the host, code units ≤ 0xFF become that byte
// and larger ones are UTF-8 encoded, so Unicode literals in source code still arrive
// as UTF-8. Use `utf8ToByteString` / `byteStringToUtf8` to convert deliberately.

/** Result slots the host writes pointers, sizes and scalars into. One host call at a
 * time uses them; callers copy the values out right after the call. */
export const SLOT_A: usize = memory.data(8);
export const SLOT_B: usize = memory.data(8);
export const SLOT_C: usize = memory.data(8);

/** Zeroes the pointer/size slots: a host may answer Ok for an empty value without writing. */
export function clearSlots(): void {
  store<u64>(SLOT_A, 0);
  store<u64>(SLOT_B, 0);
}

// String arguments of host calls are staged in one reusable unmanaged area instead of a fresh
// ArrayBuffer each: no garbage per call. A host call stages its arguments right before it runs
// and the host is done with them when it returns (it only calls back into `malloc`).
let stageBase: usize = 0;
let stageCapacity: usize = 0;
let stagedFirst: usize = 0;
let stagedSecond: usize = 0;

function reserve(size: usize): usize {
  if (size > stageCapacity) {
    if (stageBase != 0) heap.free(stageBase);
    stageCapacity = max<usize>(size, 256);
    stageBase = heap.alloc(stageCapacity);
  } else if (stageBase == 0) {
    stageCapacity = 256;
    stageBase = heap.alloc(stageCapacity);
  }
  return stageBase;
}

/** Stages one string argument; returns its pointer, its size is `stagedSize()`. */
export function stage(a: string): usize {
  const p = reserve(byteLength(a));
  stagedFirst = writeString(a, p);
  return p;
}

/** Stages two string arguments back to back; returns the first's pointer. The second starts at
 * `pointer + stagedSize()` and has `stagedSecondSize()` bytes. */
export function stage2(a: string, b: string): usize {
  const p = reserve(byteLength(a) + byteLength(b));
  stagedFirst = writeString(a, p);
  stagedSecond = writeString(b, p + stagedFirst);
  return p;
}

export function stagedSize(): usize { return stagedFirst; }
export function stagedSecondSize(): usize { return stagedSecond; }

/** Bytes a string occupies when written to the host. */
export function byteLength(s: string): usize {
  const n = <usize>s.length;
  let out: usize = 0;
  const p = changetype<usize>(s);
  for (let i: usize = 0; i < n; i++) {
    const c = <u32>load<u16>(p + (i << 1));
    out += c < 0x100 ? 1 : c < 0x800 ? 2 : 3;
  }
  return out;
}

/** Writes `s` at `dst` (see the file comment); returns the number of bytes written. */
export function writeString(s: string, dst: usize): usize {
  const n = <usize>s.length;
  const p = changetype<usize>(s);
  let o = dst;
  for (let i: usize = 0; i < n; i++) {
    const c = <u32>load<u16>(p + (i << 1));
    if (c < 0x100) {
      store<u8>(o++, <u8>c);
    } else if (c < 0x800) {
      store<u8>(o++, <u8>(0xC0 | (c >> 6)));
      store<u8>(o++, <u8>(0x80 | (c & 0x3F)));
    } else {
      store<u8>(o++, <u8>(0xE0 | (c >> 12)));
      store<u8>(o++, <u8>(0x80 | ((c >> 6) & 0x3F)));
      store<u8>(o++, <u8>(0x80 | (c & 0x3F)));
    }
  }
  return o - dst;
}

/** The bytes of `s`, ready to pass to the host. */
export function toBytes(s: string): ArrayBuffer {
  const buf = new ArrayBuffer(<i32>byteLength(s));
  writeString(s, changetype<usize>(buf));
  return buf;
}

/** A byte string holding `size` bytes read from `ptr`. */
export function readString(ptr: usize, size: usize): string {
  if (size == 0) return "";
  const s = changetype<string>(__new(size << 1, idof<String>()));
  const d = changetype<usize>(s);
  for (let i: usize = 0; i < size; i++) store<u16>(d + (i << 1), load<u8>(ptr + i));
  return s;
}

export function bytesToString(buf: ArrayBuffer): string {
  return readString(changetype<usize>(buf), <usize>buf.byteLength);
}

/** Copies `size` bytes from `ptr` into a new ArrayBuffer. */
export function readBytes(ptr: usize, size: usize): ArrayBuffer {
  const buf = new ArrayBuffer(<i32>size);
  if (size > 0) memory.copy(changetype<usize>(buf), ptr, size);
  return buf;
}

/** Copies a buffer the host allocated through our `malloc` and frees it. */
export function takeBytes(ptr: usize, size: usize): ArrayBuffer {
  const buf = readBytes(ptr, size);
  if (ptr != 0) heap.free(ptr);
  return buf;
}

/** Reads a byte string from a host-allocated buffer and frees it. */
export function takeString(ptr: usize, size: usize): string {
  const s = readString(ptr, size);
  if (ptr != 0) heap.free(ptr);
  return s;
}

/** A host-allocated buffer used in place instead of copied (pass ptr/size on to another host
 * call): `release` frees it. Reuse one rather than allocating one per call. */
export class HostBytes {
  ptr: usize = 0;
  size: usize = 0;

  /** Takes ownership of a host buffer (releasing the previous one). */
  take(ptr: usize, size: usize): void {
    this.release();
    this.ptr = ptr;
    this.size = size;
  }

  release(): void {
    if (this.ptr != 0) heap.free(this.ptr);
    this.ptr = 0;
    this.size = 0;
  }
}

/** Frees a host-allocated buffer that will not be read (a call failed after allocating). */
export function freeHostBuffer(ptr: usize): void {
  if (ptr != 0) heap.free(ptr);
}

/** Decodes UTF-8 bytes held in a byte string into a Unicode string. */
export function byteStringToUtf8(s: string): string {
  const buf = toBytes(s);
  return String.UTF8.decode(buf);
}

/** Encodes a Unicode string as UTF-8 held in a byte string. */
export function utf8ToByteString(s: string): string {
  return bytesToString(String.UTF8.encode(s));
}

/** ASCII-only lower case: bytes ≥ 0x80 stay as they are (String#toLowerCase would fold Latin-1). */
export function asciiLowerCase(s: string): string {
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5A) break;
    i++;
  }
  if (i == n) return s;
  const out = changetype<string>(__new(<usize>n << 1, idof<String>()));
  const src = changetype<usize>(s);
  const dst = changetype<usize>(out);
  for (let j = 0; j < n; j++) {
    const c = load<u16>(src + (<usize>j << 1));
    store<u16>(dst + (<usize>j << 1), c >= 0x41 && c <= 0x5A ? c + 0x20 : c);
  }
  return out;
}
