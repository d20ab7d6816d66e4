// Baseline: a bare Fastify route returning the same bytes from memory (no logging).
// GET /bytes/<n>. Prints "listening <port>" when ready.
import Fastify from "fastify";

const bodies = new Map<number, Buffer>();
function body(n: number): Buffer {
  let b = bodies.get(n);
  if (!b) {
    b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
    bodies.set(n, b);
  }
  return b;
}

const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
app.get<{ Params: { n: string } }>("/bytes/:n", (req, reply) => {
  reply.header("content-type", "application/octet-stream").send(body(Number(req.params.n)));
});
const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" });
console.log(`listening ${new URL(address).port}`);
process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
