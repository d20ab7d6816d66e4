// Baseline: a bare Fastify route returning the same bytes from memory (no logging).
// GET /bytes/<n>. Prints "listening <port>" when ready.
// BARE_WORKING_SET_BYTES: serve each size from that many bytes of distinct copies of the body
// (round robin) instead of one buffer, so the body is read from DRAM as a store's records are,
// not from the CPU cache (the mirror hit path serves a different record for every request).
import Fastify from "fastify";

const workingSet = Number(process.env.BARE_WORKING_SET_BYTES ?? 0);
const bodies = new Map<number, { copies: Buffer[]; next: number }>();
function body(n: number): Buffer {
  let b = bodies.get(n);
  if (!b) {
    const one = Buffer.alloc(n);
    for (let i = 0; i < n; i++) one[i] = (i * 7 + 3) & 0xff;
    const copies = [one];
    for (let k = Math.ceil(workingSet / Math.max(1, n)); copies.length < k; ) copies.push(Buffer.from(one));
    b = { copies, next: 0 };
    bodies.set(n, b);
  }
  const out = b.copies[b.next];
  b.next = b.next + 1 === b.copies.length ? 0 : b.next + 1;
  return out;
}

const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
app.get<{ Params: { n: string } }>("/bytes/:n", (req, reply) => {
  reply.header("content-type", "application/octet-stream").send(body(Number(req.params.n)));
});
// Bodies built before listening: the first request must not pay for a large working set.
for (const n of (process.env.BARE_SIZES ?? "").split(",").filter(Boolean)) body(Number(n));
const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" });
console.log(`listening ${new URL(address).port}`);
process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
