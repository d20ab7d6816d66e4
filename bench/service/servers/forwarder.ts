// Baseline: a minimal Fastify + undici forwarder. Every request goes to UPSTREAM (host:port)
// through one keep-alive undici Pool; status, end-to-end headers and the body stream come back.
import Fastify from "fastify";
import { Pool } from "undici";

const upstream = process.env.UPSTREAM;
if (!upstream) throw new Error("UPSTREAM=host:port is required");
const pool = new Pool(`http://${upstream}`, { connections: 64, pipelining: 1 });
const hop = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]);

const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
app.all("/*", async (req, reply) => {
  const res = await pool.request({ method: req.method as "GET", path: req.url, headers: { host: upstream } });
  reply.code(res.statusCode);
  for (const [k, v] of Object.entries(res.headers)) if (!hop.has(k) && v !== undefined) reply.header(k, v);
  return reply.send(res.body);
});
const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" });
console.log(`listening ${new URL(address).port}`);
process.on("SIGTERM", () => void app.close().then(() => pool.close()).then(() => process.exit(0)));
