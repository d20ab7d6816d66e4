// A bump allocator of byte ranges in shared slabs, with a count of live ranges per slab: the
// memory store keeps record keys, counter keys and small bodies here instead of in one JS string
// or Buffer per record.
//
// Why: every JS object a record keeps lives in V8's old generation, and each young-generation
// collection (a scavenge, every ~25 ms under load) walks the old generation's pages. With a
// million records of a few objects each (~460 B of heap per record), a scavenge took ~1 ms
// instead of ~0.2 ms, and that pause was the mirror hit's p99 (README, "Garbage collection and the
// tail"). A slab is one ArrayBuffer outside the JS heap, shared by the hundreds of ranges written
// after one another.
//
// Ranges are freed one by one (`free`); a slab is dropped, for the garbage collector to reclaim,
// once no range in it is left. Records leave about in the order they came (TTL, least recently
// used), so slabs die in order too; a range that outlives its neighbours keeps its one slab alive.
// A reader holding a Buffer view of a range keeps the memory alive by itself: a dropped slab is
// never written again.

export class SlabArena {
  private readonly slabs: Array<Buffer | undefined> = [];
  private readonly live: number[] = [];
  private readonly freeIds: number[] = [];
  private current = -1;
  private used = 0;
  private heldBytes = 0;
  /** The slab id of the range `alloc` returned last. */
  slab = -1;

  /**
   * @param slabBytes size of a shared slab; a range larger than it gets a slab of its own
   * @param align     ranges start at multiples of this (8: like an allocation of its own)
   */
  constructor(
    readonly slabBytes: number,
    private readonly align = 1,
  ) {}

  /** Reserves `len` bytes; returns their offset in slab `this.slab` (read it with `buffer`). */
  alloc(len: number): number {
    if (len > this.slabBytes) {
      const id = this.newSlab(len);
      this.live[id] = 1;
      this.slab = id;
      return 0;
    }
    if (this.current < 0 || this.used + len > this.slabBytes) {
      const old = this.current;
      this.current = this.newSlab(this.slabBytes);
      this.used = 0;
      if (old >= 0 && this.live[old] === 0) this.drop(old);
    }
    const at = this.used;
    this.used += this.align === 1 ? len : (len + this.align - 1) & -this.align;
    this.live[this.current]++;
    this.slab = this.current;
    return at;
  }

  /** Frees one range of slab `id`. */
  free(id: number): void {
    if (--this.live[id] === 0 && id !== this.current) this.drop(id);
  }

  buffer(id: number): Buffer {
    return this.slabs[id]!;
  }

  /** Bytes of the slabs held (live ranges, the space between them, and the current slab). */
  get bytes(): number {
    return this.heldBytes;
  }

  clear(): void {
    this.slabs.length = 0;
    this.live.length = 0;
    this.freeIds.length = 0;
    this.current = -1;
    this.used = 0;
    this.heldBytes = 0;
  }

  private newSlab(bytes: number): number {
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.slabs.length;
    this.slabs[id] = Buffer.allocUnsafeSlow(bytes);
    this.live[id] = 0;
    this.heldBytes += bytes;
    return id;
  }

  private drop(id: number): void {
    this.heldBytes -= this.slabs[id]!.length;
    this.slabs[id] = undefined;
    this.freeIds.push(id);
  }
}
