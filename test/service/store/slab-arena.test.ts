// Byte ranges in shared slabs: a slab is dropped once its last range is freed, and never while
// ranges are still allocated from it.
import { describe, expect, it } from "vitest";
import { SlabArena } from "../../../service/store/slab-arena.ts";

describe("SlabArena", () => {
  it("ranges-share-a-slab-until-it-is-full-and-keep-their-bytes", () => {
    const a = new SlabArena(100, 8);
    const at = [a.alloc(10), a.alloc(30), a.alloc(50)];
    const ids = [a.slab, a.slab, a.slab];
    expect(at).toEqual([0, 16, 48]); // 8-byte aligned
    expect(a.bytes).toBe(100);
    a.buffer(ids[1]).fill(7, at[1], at[1] + 30);
    const next = a.alloc(10); // 98 + 10 > 100: a new slab
    expect(a.slab).not.toBe(ids[0]);
    expect(next).toBe(0);
    expect(a.bytes).toBe(200);
    expect(a.buffer(ids[1]).subarray(at[1], at[1] + 30).every((b) => b === 7)).toBe(true);
  });

  it("a-slab-is-dropped-when-its-last-range-is-freed-and-its-id-reused", () => {
    const a = new SlabArena(100);
    a.alloc(60);
    const first = a.slab;
    a.alloc(30);
    const held = a.buffer(first);
    a.alloc(60); // second slab is current now
    const second = a.slab;
    a.free(first);
    expect(a.bytes).toBe(200); // one range of the first slab is left
    a.free(first);
    expect(a.bytes).toBe(100);
    expect(held.length).toBe(100); // a reader's view of a dropped slab still reads
    a.alloc(60); // 60 + 60 > 100: a new slab, under the freed id
    expect(a.slab).toBe(first);
    expect(a.buffer(first)).not.toBe(held);
    a.free(second); // not the current slab: dropped
    expect(a.bytes).toBe(100);
    // the current slab is kept even when empty, and dropped once another replaces it
    a.free(first);
    expect(a.bytes).toBe(100);
    a.alloc(60); // 60 (freed, but used) + 60 > 100: a new slab replaces the empty one
    expect(a.bytes).toBe(100);
  });

  it("a-range-larger-than-a-slab-gets-one-of-its-own", () => {
    const a = new SlabArena(100);
    a.alloc(10);
    const shared = a.slab;
    expect(a.alloc(500)).toBe(0);
    const own = a.slab;
    expect(own).not.toBe(shared);
    expect(a.buffer(own).length).toBe(500);
    expect(a.alloc(10)).toBe(10); // still the shared slab
    expect(a.slab).toBe(shared);
    a.free(own);
    expect(a.bytes).toBe(100);
  });
});
