// The "real upstream" of the bench: plain node:http serving fixed bytes from memory.
// GET /bytes/<n> → n bytes (application/octet-stream). Prints "listening <port>" when ready.
import { createServer } from "node:http";

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

const server = createServer((req, res) => {
  const m = /^\/bytes\/(\d+)/.exec(req.url ?? "");
  const n = m ? Math.min(Number(m[1]), 16 << 20) : 0;
  if (!m) {
    res.writeHead(404).end();
    return;
  }
  const b = body(n);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": b.length, "cache-control": "max-age=600" });
  res.end(b);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${(server.address() as { port: number }).port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
