// Reusable buffers for large record bodies (memory store).
//
// Why: every recorded body used to be an ArrayBuffer of its own that lived in the store for a
// while, so it reached V8's old generation, where only a full mark-compact frees it. V8 starts one
// whenever ~64 MiB of external memory has been allocated since the last, so a test path
// recording 64 KiB answers at a few thousand per second ran a full collection several times a
// second (measured: GC threads took about 2× the request's own CPU). A body leaving the store is
// instead handed back here and the next record's body is copied into it: at steady state no new
// external memory is allocated at all.
//
// A buffer is reused only when nothing can still read it: the store counts readers (each record it
// hands out is leased, see memory.ts) and gives a body back only once its record has left the
// store and its last reader released it. A reader that never releases only costs the reuse (the
// buffer is then left to the garbage collector), never correctness.

/** Smallest body kept in a pooled buffer; smaller ones are cheap for the GC and waste more. */
export const POOL_MIN_BYTES = 16 * 1024;

/** Size classes: 2^k · {4, 5, 6, 7}/4, so a body wastes at most a quarter of its buffer. */
export function sizeClass(len: number): number {
  const k = 31 - Math.clz32(len); // 2^k ≤ len < 2^(k+1)
  const step = 2 ** (k - 2);
  return Math.ceil(len / step) * step;
}

export class BodyPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;

  /** @param maxFreeBytes most bytes kept in unused buffers (beyond it, returned buffers are
   * dropped to the GC) */
  constructor(private readonly maxFreeBytes: number) {}

  /** A buffer of exactly `len` bytes (≥ POOL_MIN_BYTES), reused when one of its class is free. */
  take(len: number): Buffer {
    const c = sizeClass(len);
    const ab = this.free.get(c)?.pop();
    if (ab !== undefined) {
      this.freeBytes -= c;
      return Buffer.from(ab, 0, len);
    }
    return Buffer.from(new ArrayBuffer(c), 0, len);
  }

  /** Hands back a buffer `take` returned, once nothing reads it any more. */
  give(buf: Buffer): void {
    const ab = buf.buffer as ArrayBuffer;
    const c = ab.byteLength;
    if (this.freeBytes + c > this.maxFreeBytes) return;
    let list = this.free.get(c);
    if (list === undefined) {
      list = [];
      this.free.set(c, list);
    }
    list.push(ab);
    this.freeBytes += c;
  }

  /** Bytes held in unused buffers. */
  get idleBytes(): number {
    return this.freeBytes;
  }

  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }
}
