// A sample API app, run twice (test stack and mirror stack). For each inbound request it makes a
// few outbound calls through its sidecar, propagating `x-request-id`, and answers with a JSON
// summary of what it got downstream, so test and mirror answers can be compared byte for byte.
//
// The calls (select a subset with `?calls=items,order`):
//   items    GET  http://<upstream>/catalog/items?page=1            (absolute-form, via the proxy)
//   items2   GET  the same URL again                                (same key tuple, n = 1)
//   order    POST http://<upstream>/orders  with a JSON body        (buffered and dispatched)
//   metadata GET  /latest/meta-data/iam/security-credentials/...   with Host 169.254.169.254
//                                                                   (Host-header form, like a
//                                                                    transparently intercepted call)
// `?spoof=<value>` makes every outbound call carry the stack header with that value, as a
// misbehaving app would (the filter must replace it on tagged calls and leave passthrough alone).
// `?order_bytes=N` pads the POST body to N bytes (large-body cases).
// `?up=<query>` is appended to the upstream URLs (e.g. `up=delay_ms%3D1000` for a slow upstream).
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { createServer, type Server } from "node:http";
import { closeServer, listen, LOOPBACK, readBody } from "./net.ts";

export const ALL_CALLS = ["items", "items2", "order", "metadata"] as const;
export type CallName = (typeof ALL_CALLS)[number];

export interface DownstreamResult {
  call: CallName;
  status: number;
  body: string;
}

/** What the app answers. `downstream` (with `host` and `path`) is what must be identical between
 * the test and the mirror app; `observed` carries stack-specific details (cache verdicts). */
export interface AppSummary {
  requestId: string | null;
  host: string | null;
  path: string;
  downstream: DownstreamResult[];
  observed: Array<{ call: CallName; xMirrorCache: string | null; error?: string }>;
}

export interface AppOptions {
  name: string;
  /** The sidecar's outbound listener, `127.0.0.1:<port>`. */
  sidecar: string;
  /** Authority of the upstream, e.g. `127.0.0.1:<port>`. */
  upstream: string;
  /** Authority of the metadata endpoint (default `169.254.169.254`). */
  metadata?: string;
  requestIdHeader?: string;
  /** Stack header name, used only for `?spoof=` (default x-mirror-stack). */
  stackHeader?: string;
}

export interface AppHandle {
  name: string;
  port: number;
  address: string;
  stats: { inbound: number; outbound: number; outboundByCall: Record<string, number> };
  stop(): Promise<void>;
}

export async function startApp(options: AppOptions): Promise<AppHandle> {
  const [sidecarHost, sidecarPort] = options.sidecar.split(":");
  const metadata = options.metadata ?? "169.254.169.254";
  const ridHeader = (options.requestIdHeader ?? "x-request-id").toLowerCase();
  const stackHeader = (options.stackHeader ?? "x-mirror-stack").toLowerCase();
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const stats = { inbound: 0, outbound: 0, outboundByCall: {} as Record<string, number> };

  function outbound(
    call: CallName,
    rid: string | undefined,
    spec: { method: string; authority: string; path: string; absolute: boolean; body?: string },
    spoof: string | null,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    stats.outbound++;
    stats.outboundByCall[call] = (stats.outboundByCall[call] ?? 0) + 1;
    const headers: Record<string, string> = { host: spec.authority, accept: "application/json" };
    if (rid !== undefined) headers[ridHeader] = rid;
    if (spoof !== null) headers[stackHeader] = spoof;
    if (spec.body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(spec.body));
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: sidecarHost,
          port: Number(sidecarPort),
          method: spec.method,
          path: spec.absolute ? `http://${spec.authority}${spec.path}` : spec.path,
          headers,
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.once("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
          );
          res.once("error", reject);
        },
      );
      req.once("error", reject);
      req.end(spec.body);
    });
  }

  const server: Server = createServer(async (req, res) => {
    stats.inbound++;
    await readBody(req).catch(() => undefined);
    const url = new URL(req.url ?? "/", "http://app.invalid");
    const rid = req.headers[ridHeader] as string | undefined;
    const wanted = (url.searchParams.get("calls")?.split(",") ?? [...ALL_CALLS]).filter((c): c is CallName =>
      (ALL_CALLS as readonly string[]).includes(c),
    );
    const summary: AppSummary = {
      requestId: rid ?? null,
      host: req.headers.host ?? null,
      path: req.url ?? "/",
      downstream: [],
      observed: [],
    };
    // Sequential, as an app's business logic usually is: the order of same-tuple calls is what
    // gives them their `n` in the cache key.
    const up = url.searchParams.get("up");
    const orderBytes = Number(url.searchParams.get("order_bytes") ?? 0);
    const orderBody = () => {
      const base = { requestId: rid ?? null, sku: "sku-42", qty: 2 };
      const plain = JSON.stringify(base);
      if (!(orderBytes > plain.length + 12)) return plain;
      return JSON.stringify({ ...base, pad: "x".repeat(orderBytes - plain.length - 9) });
    };
    const withUp = (p: string) => (up ? `${p}${p.includes("?") ? "&" : "?"}${up}` : p);
    for (const call of wanted) {
      const spec =
        call === "items" || call === "items2"
          ? { method: "GET", authority: options.upstream, path: withUp("/catalog/items?page=1"), absolute: true }
          : call === "order"
            ? {
                method: "POST",
                authority: options.upstream,
                path: withUp("/orders"),
                absolute: true,
                body: orderBody(),
              }
            : {
                method: "GET",
                authority: metadata,
                path: "/latest/meta-data/iam/security-credentials/sandbox-role",
                absolute: false,
              };
      try {
        const r = await outbound(call, rid, spec, url.searchParams.get("spoof"));
        summary.downstream.push({ call, status: r.status, body: r.body });
        summary.observed.push({ call, xMirrorCache: (r.headers["x-mirror-cache"] as string | undefined) ?? null });
      } catch (err) {
        summary.downstream.push({ call, status: 0, body: "" });
        summary.observed.push({ call, xMirrorCache: null, error: (err as Error).message });
      }
    }
    const out = JSON.stringify(summary);
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
    res.end(out);
  });
  server.keepAliveTimeout = 30_000;
  const port = await listen(server);
  return {
    name: options.name,
    port,
    address: `${LOOPBACK}:${port}`,
    stats,
    async stop() {
      await closeServer(server);
      agent.destroy();
    },
  };
}
