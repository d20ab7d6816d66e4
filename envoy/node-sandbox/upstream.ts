// A sample upstream (a microservice or an external API both stacks call). It counts the calls it
// gets per value of the stack header (and in total) and answers with a body that is deterministic
// but specific to each call: it carries a global sequence number, so a mirror call that reached
// the upstream would get a DIFFERENT body from its test twin — which is what makes "test and
// mirror got identical bodies" meaningful.
//
// Knobs for fault tests (query parameters): `status=NNN` answers with that status,
// `delay_ms=N` waits before answering.
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { closeServer, headerPairs, listen, LOOPBACK, readBody } from "./net.ts";

export interface UpstreamRequestRecord {
  seq: number;
  method: string;
  path: string;
  host: string | undefined;
  /** Value of the stack header, or undefined when the call carried none. */
  stack: string | undefined;
  requestId: string | undefined;
  bodyBytes: number;
  headers: Array<[string, string]>;
}

export interface UpstreamStats {
  total: number;
  /** Calls per stack-header value; calls without the header count under "(none)". */
  byStack: Record<string, number>;
  requests: UpstreamRequestRecord[];
}

export interface UpstreamHandle {
  name: string;
  port: number;
  /** `127.0.0.1:<port>`: what apps put in their URLs and what the cache forwards to. */
  authority: string;
  stats: UpstreamStats;
  reset(): void;
  stop(): Promise<void>;
}

export interface UpstreamOptions {
  name?: string;
  stackHeader?: string;
  port?: number;
}

export const NO_STACK = "(none)";

export async function startUpstream(options: UpstreamOptions = {}): Promise<UpstreamHandle> {
  const name = options.name ?? "upstream";
  const stackHeader = (options.stackHeader ?? "x-mirror-stack").toLowerCase();
  const stats: UpstreamStats = { total: 0, byStack: {}, requests: [] };
  const perPath = new Map<string, number>();

  const server: Server = createServer(async (req, res) => {
    const body = await readBody(req).catch(() => Buffer.alloc(0));
    const headers = headerPairs(req.rawHeaders);
    const stackValues = headers.filter(([k]) => k === stackHeader).map(([, v]) => v);
    const stack = stackValues.length ? stackValues.join(",") : undefined;
    const seq = ++stats.total;
    stats.byStack[stack ?? NO_STACK] = (stats.byStack[stack ?? NO_STACK] ?? 0) + 1;
    const url = new URL(req.url ?? "/", "http://upstream.invalid");
    const pathSeq = (perPath.get(url.pathname) ?? 0) + 1;
    perPath.set(url.pathname, pathSeq);
    const requestId = req.headers["x-request-id"] as string | undefined;
    stats.requests.push({
      seq,
      method: req.method ?? "",
      path: req.url ?? "",
      host: req.headers.host,
      stack,
      requestId,
      bodyBytes: body.length,
      headers,
    });

    const delay = Number(url.searchParams.get("delay_ms") ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const status = Number(url.searchParams.get("status") ?? 200) || 200;
    const out = JSON.stringify({
      service: name,
      method: req.method,
      path: req.url,
      requestId: requestId ?? null,
      // Call-specific: a second call (e.g. a mirror that got through) sees other numbers.
      seq,
      pathSeq,
      receivedBodySha256: body.length ? createHash("sha256").update(body).digest("hex") : null,
    });
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(out),
      "x-upstream-seq": String(seq),
      "set-cookie": `session=${seq}; Path=/`,
    });
    res.end(out);
  });
  server.keepAliveTimeout = 30_000;
  const port = await listen(server, options.port ?? 0);

  return {
    name,
    port,
    authority: `${LOOPBACK}:${port}`,
    stats,
    reset() {
      stats.total = 0;
      stats.byStack = {};
      stats.requests.length = 0;
      perPath.clear();
    },
    stop: () => closeServer(server),
  };
}

/** The cloud metadata endpoint's stand-in (169.254.169.254 as the apps and the filter see it; a
 * loopback port in reality, reached only through a sidecar's address table). Deterministic
 * answers — both stacks call it directly, so both must get the same bytes. Records what it saw. */
export interface MetadataHandle {
  port: number;
  address: string;
  requests: UpstreamRequestRecord[];
  stop(): Promise<void>;
}

export async function startMetadataStandIn(options: { stackHeader?: string } = {}): Promise<MetadataHandle> {
  const stackHeader = (options.stackHeader ?? "x-mirror-stack").toLowerCase();
  const requests: UpstreamRequestRecord[] = [];
  const server = createServer(async (req, res) => {
    const body = await readBody(req).catch(() => Buffer.alloc(0));
    const headers = headerPairs(req.rawHeaders);
    const stackValues = headers.filter(([k]) => k === stackHeader).map(([, v]) => v);
    requests.push({
      seq: requests.length + 1,
      method: req.method ?? "",
      path: req.url ?? "",
      host: req.headers.host,
      stack: stackValues.length ? stackValues.join(",") : undefined,
      requestId: req.headers["x-request-id"] as string | undefined,
      bodyBytes: body.length,
      headers,
    });
    const out = JSON.stringify({
      Code: "Success",
      Type: "AWS-HMAC",
      AccessKeyId: "ASIASANDBOXEXAMPLE",
      SecretAccessKey: "sandbox-not-a-secret",
      Token: "sandbox-token",
      Expiration: "2030-01-01T00:00:00Z",
      path: req.url,
    });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
    res.end(out);
  });
  const port = await listen(server);
  return { port, address: `${LOOPBACK}:${port}`, requests, stop: () => closeServer(server) };
}
