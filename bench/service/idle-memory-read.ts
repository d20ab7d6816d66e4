// How fast this machine copies 64 KiB buffers it wrote a while ago: right after writing them, and
// again after they sat idle. Not a target; a check of the bench machine.
//
// Why: the 64 KiB mirror hit reads records written by a prefill that takes one to two minutes at
// 12 GiB, and on the bench VM the kernel's DAMON runs a `pageout` scheme on memory idle for a
// minute (age ≥ 12 aggregation intervals of 5 s, up to 128 MiB/s). With no swap nothing is paged
// out, but pages it tried are slower to read afterwards (their accessed bits cleared, their TLB
// entries flushed). Run this to see whether a machine does that before comparing hit runs whose
// records have different ages.
//
//   npx tsx bench/service/idle-memory-read.ts [buffers = 48000] [idle seconds = 70]
//
// Pin it (`taskset -c 0`) on a shared machine. Writing fresh memory is slow on a VM whose
// hypervisor backs guest memory lazily: that time is printed too.

const count = Number(process.argv[2] ?? 48_000);
const idleSeconds = Number(process.argv[3] ?? 70);
const SIZE = 64 * 1024;

const buffers: Buffer[] = [];
const t = performance.now();
for (let i = 0; i < count; i++) buffers.push(Buffer.alloc(SIZE, i & 0xff));
const writeMs = performance.now() - t;
console.log(`wrote ${count} × 64 KiB (${((count * SIZE) / 2 ** 30).toFixed(1)} GiB): ${((writeMs * 1000) / count).toFixed(1)} µs per buffer`);

const scratch = Buffer.allocUnsafe(SIZE);
function pass(label: string): void {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) buffers[i].copy(scratch);
  console.log(`${label}: ${(((performance.now() - t0) * 1000) / count).toFixed(2)} µs per 64 KiB copy`);
}

pass("read right after writing");
pass("read again");
await new Promise((r) => setTimeout(r, idleSeconds * 1000));
pass(`read after ${idleSeconds} s idle`);
pass("read again");
