// Record bodies copied into a few reused buffers before they are written to the socket.
//
// Why: a record's body has sat in the store since its test call, out of the CPU's caches, and
// the kernel copies such a body into a socket much more slowly than user space copies it. On the
// bench VM (AMD EPYC, 2 cores; `npx tsx bench/service/socket-copy.ts`, three rounds each) writing
// 64 KiB bodies from a 2.5 GiB set to a loopback socket cost 39–52 µs of CPU per write when
// written directly, 31–42 µs when first copied into a buffer that stays in cache and that buffer
// written; 32 KiB: 13–16 against 11–13 µs; 128 KiB: 57–64 against 38–49 µs. At 16 KiB and at
// 256 KiB there was no clear gain, so only bodies between STAGE_MIN_BYTES and STAGE_MAX_BYTES are
// staged. In the service bench the 64 KiB mirror hit went from 49 to 31 µs of CPU per request. A
// staged answer also lets go of its record at once instead of when the answer is written.
import { BodyPool } from "./store/body-pool.ts";

export const STAGE_MIN_BYTES = 32 * 1024;
export const STAGE_MAX_BYTES = 128 * 1024;

// The store's buffer pool serves here too: its free lists are stacks, so the buffer taken next is
// the one given back last, the one still in cache. Idle buffers kept: up to sixteen of the largest
// size; more are allocated while more answers are being written.
const pool = new BodyPool(16 * STAGE_MAX_BYTES);

/** Whether a body of `len` bytes read from a store's memory is copied before it is written. */
export function stages(len: number): boolean {
  return len >= STAGE_MIN_BYTES && len <= STAGE_MAX_BYTES;
}

/** A copy of `body` in a staging buffer (the service stages only lengths `stages` accepts;
 * socket-copy.ts measures others); hand it back with `unstage` once the socket has taken it (the
 * write's callback), never earlier. */
export function stage(body: Buffer): Buffer {
  const copy = pool.take(body.length);
  body.copy(copy);
  return copy;
}

export function unstage(copy: Buffer): void {
  pool.give(copy);
}
