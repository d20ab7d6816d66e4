// Sample upstream for the sandbox: a "real" HTTP API whose answers change on every call (a counter
// and a timestamp), so a mirror-stack answer that equals the test-stack answer proves it was
// replayed by mirror-cache, not fetched again. ROLE=metadata turns it into the cloud-metadata
// stand-in (169.254.169.254 in the Envoy routes) with a fixed answer.
//
//   GET  /quote                 {"quote":"q-<n>","n":<n>,"served_at":<ms>}
//   POST /orders                {"order_id":"o-<n>","received":<request body as JSON or text>}
//   GET  /latest/meta-data/...  (metadata role) fixed text
//   GET  /__stats               text, one "name=value" per line: total, tagged (requests that carried
//                               the stack header), per-path counts
//   GET  /healthz               ok
import http from "node:http";

const PORT = Number(process.env.PORT ?? 9000);
const ROLE = process.env.ROLE ?? "upstream";
const STACK_HEADER = (process.env.STACK_HEADER ?? "x-mirror-stack").toLowerCase();

const stats = { total: 0, tagged: 0, paths: new Map() };
let n = 0;

function send(res, status, body, type = "application/json") {
  const buf = Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  res.writeHead(status, { "content-type": type, "content-length": buf.length });
  res.end(buf);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/healthz") return send(res, 200, "ok\n", "text/plain");
    if (url.pathname === "/__stats") {
      const lines = [`role=${ROLE}`, `total=${stats.total}`, `tagged=${stats.tagged}`];
      for (const [p, c] of [...stats.paths].sort()) lines.push(`path ${p}=${c}`);
      return send(res, 200, lines.join("\n") + "\n", "text/plain");
    }
    stats.total++;
    if (req.headers[STACK_HEADER] !== undefined) stats.tagged++;
    const key = `${req.method} ${url.pathname}`;
    stats.paths.set(key, (stats.paths.get(key) ?? 0) + 1);
    console.log(JSON.stringify({ role: ROLE, method: req.method, path: req.url, host: req.headers.host,
      requestId: req.headers["x-request-id"], stack: req.headers[STACK_HEADER] ?? null }));

    if (ROLE === "metadata") {
      if (url.pathname === "/latest/meta-data/instance-id") return send(res, 200, "i-0sandbox0000000", "text/plain");
      if (url.pathname.startsWith("/latest/meta-data/iam/security-credentials")) {
        return send(res, 200, { Code: "Success", AccessKeyId: "ASIASANDBOX", Expiration: "2099-01-01T00:00:00Z" });
      }
      return send(res, 404, "not found\n", "text/plain");
    }
    n++;
    if (req.method === "GET" && url.pathname === "/quote") {
      return send(res, 200, { quote: `q-${n}`, n, served_at: Date.now() });
    }
    if (req.method === "POST" && url.pathname === "/orders") {
      const text = Buffer.concat(chunks).toString("utf8");
      let received;
      try { received = JSON.parse(text); } catch { received = text; }
      return send(res, 201, { order_id: `o-${n}`, received, served_at: Date.now() });
    }
    send(res, 404, { error: "not found", path: url.pathname });
  });
});

server.listen(PORT, "0.0.0.0", () => console.log(`${ROLE} listening on ${PORT}`));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
