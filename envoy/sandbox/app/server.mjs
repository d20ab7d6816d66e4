// Sample API app for the sandbox. The same code runs as the test app and as the mirror app; all its
// outbound HTTP goes through its own Envoy (EGRESS_PROXY, the egress listener), like an app whose
// sidecar captures outbound traffic. It propagates x-request-id, the pairing key.
//
//   GET  /api/quote   -> GET http://upstream:9000/quote and GET http://169.254.169.254/latest/meta-data/instance-id
//   POST /api/orders  -> POST http://upstream:9000/orders with the same body
//   GET  /__seen/<request-id>  what this app saw and answered for that request id, one "name=value" per line:
//                              stack, host (the Host it received), status, body_sha256 (of its answer),
//                              then "call <METHOD> <URL> <status> <x-mirror-cache or ->" per outbound call
//   GET  /healthz
import { createHash } from "node:crypto";
import http from "node:http";

const PORT = Number(process.env.PORT ?? 3000);
const STACK = process.env.STACK ?? "unknown";
const [PROXY_HOST, PROXY_PORT] = (process.env.EGRESS_PROXY ?? "127.0.0.1:10001").split(":");
const UPSTREAM = process.env.UPSTREAM_URL ?? "http://upstream:9000";
const METADATA = process.env.METADATA_URL ?? "http://169.254.169.254";

const seen = new Map(); // request id -> record
const SEEN_MAX = 1000;

/** One outbound request through the egress proxy (absolute-form request target, like an HTTP proxy client). */
function outbound(method, url, requestId, body) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const headers = { host: u.host, "x-request-id": requestId };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    const req = http.request({ host: PROXY_HOST, port: Number(PROXY_PORT), method, path: u.href, headers, timeout: 15000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ method, url, status: res.statusCode, cache: res.headers["x-mirror-cache"] ?? "-",
        body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve({ method, url, status: 0, cache: "-", body: String(err.message) }));
    req.end(body);
  });
}

function answer(res, record, status, payload) {
  const body = JSON.stringify(payload);
  record.status = status;
  record.body_sha256 = createHash("sha256").update(body).digest("hex");
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function parse(text) {
  try { return JSON.parse(text); } catch { return text; }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/healthz") return res.end("ok\n");
    const seenMatch = /^\/__seen\/(.+)$/.exec(url.pathname);
    if (seenMatch) {
      const r = seen.get(decodeURIComponent(seenMatch[1]));
      if (!r) { res.writeHead(404); return res.end("not seen\n"); }
      const lines = [`stack=${STACK}`, `host=${r.host}`, `status=${r.status}`, `body_sha256=${r.body_sha256}`,
        ...r.calls.map((c) => `call ${c.method} ${c.url} ${c.status} ${c.cache}`)];
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end(lines.join("\n") + "\n");
    }

    const requestId = req.headers["x-request-id"];
    if (typeof requestId !== "string" || requestId === "") {
      res.writeHead(400); return res.end("x-request-id required\n");
    }
    const record = { host: req.headers.host, status: 0, body_sha256: "", calls: [] };
    if (seen.size >= SEEN_MAX) seen.delete(seen.keys().next().value);
    seen.set(requestId, record);
    console.log(JSON.stringify({ stack: STACK, method: req.method, path: req.url, host: req.headers.host, requestId }));

    if (req.method === "GET" && url.pathname === "/api/quote") {
      const quote = await outbound("GET", `${UPSTREAM}/quote`, requestId);
      const instance = await outbound("GET", `${METADATA}/latest/meta-data/instance-id`, requestId);
      record.calls.push(quote, instance);
      if (quote.status !== 200) return answer(res, record, 502, { error: "upstream failed", status: quote.status, cache: quote.cache });
      return answer(res, record, 200, { quote: parse(quote.body), instance: instance.body });
    }
    if (req.method === "POST" && url.pathname === "/api/orders") {
      const order = await outbound("POST", `${UPSTREAM}/orders`, requestId, Buffer.concat(chunks).toString("utf8"));
      record.calls.push(order);
      if (order.status < 200 || order.status > 299) return answer(res, record, 502, { error: "upstream failed", status: order.status, cache: order.cache });
      return answer(res, record, 200, { order: parse(order.body) });
    }
    answer(res, record, 404, { error: "not found" });
  });
});

server.listen(PORT, "0.0.0.0", () => console.log(`${STACK} app listening on ${PORT}, egress via ${PROXY_HOST}:${PROXY_PORT}`));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
