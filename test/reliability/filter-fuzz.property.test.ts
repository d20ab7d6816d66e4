// Property-based fuzzing of the release filter (build/filter.wasm) in the proxy-wasm emulator:
// arbitrary configurations, headers, authorities, bodies chunked at random, and arbitrary cache
// answers or failures. Properties: never a trap (`host.failed` stays false); a metadata endpoint
// in any spelling (port, brackets, case, trailing dot, IPv4-mapped IPv6, on :authority or on
// destination.address) passes completely untouched (headers and body identical, no dispatch);
// a tagged call carries exactly one stack header with the stack's value whatever the app sent;
// a mirror-stack call never reaches the upstream, whatever the cache does; a test-stack call is
// always either answered by the cache or continued to its upstream (never lost).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Action, LogLevel, ProxyWasmHost, type Header } from "../proxy-wasm-host/index.ts";
import { CACHE_CLUSTER, config, options } from "../filter/helpers.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

// ---- generators --------------------------------------------------------------------------

const tokenChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~".split(""));
const headerName = fc.string({ unit: tokenChar, minLength: 1, maxLength: 24 });
const headerValue = fc.oneof(
  fc.string({ unit: fc.constantFrom(..." !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\t".split("")), maxLength: 80 }),
  fc.string({ maxLength: 40 }), // any UTF-16, as Envoy may carry opaque bytes
  fc.constantFrom("test", "mirror", "true", "false", "", " test", "TEST", "test,mirror"),
);
/** App headers, including stack-header spoofs and request ids of every shape. */
const appHeaders = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.tuple(headerName, headerValue) },
    { weight: 2, arbitrary: fc.tuple(fc.constant("x-mirror-stack"), headerValue) },
    { weight: 1, arbitrary: fc.tuple(fc.constant("x-azar-mirror"), headerValue) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("content-length", "transfer-encoding", "connection", "te", "upgrade", "host"), headerValue) },
  ),
  { maxLength: 12 },
) as fc.Arbitrary<Header[]>;
const requestId = fc.option(fc.oneof(fc.uuid(), fc.string({ maxLength: 64 }), fc.constant("")), { nil: undefined });
const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PROPFIND");
const path = fc.oneof(fc.webPath(), fc.string({ maxLength: 100 }).map((s) => `/${s}`), fc.constant("*"));
const ordinaryHost = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((a) => `[${a}]`), fc.string({ maxLength: 30 }));
const port = fc.option(fc.integer({ min: 0, max: 70000 }), { nil: undefined });
/** A body split at random points (Envoy delivers data frames of any size). */
const chunkedBody = fc.uint8Array({ maxLength: 4096 }).chain((bytes) =>
  fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 6 }).map((cuts) => {
    const pts = [...new Set([0, ...cuts, bytes.length])].sort((a, b) => a - b);
    const chunks: Uint8Array[] = [];
    for (let i = 1; i < pts.length; i++) chunks.push(bytes.subarray(pts[i - 1], pts[i]));
    return chunks;
  }),
);

// Metadata endpoints in every spelling CONTRACTS.md promises to match.
const randomCase = (s: string) =>
  fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((flips) => s.split("").map((c, i) => (flips[i] ? c.toUpperCase() : c.toLowerCase())).join(""));
const v4Meta = fc.constantFrom("169.254.169.254", "169.254.170.2", "100.100.100.200");
const mapped = v4Meta.chain((ip) => {
  const [a, b, c, d] = ip.split(".").map(Number);
  const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  return fc.constantFrom(`::ffff:${ip}`, `::ffff:${hex}`, `0:0:0:0:0:ffff:${ip}`, `0000:0000:0000:0000:0000:ffff:${hex}`);
});
const v6Meta = fc.constantFrom("fd00:ec2::254", "fd00:ec2:0:0:0:0:0:254", "fd00:0ec2:0000:0000:0000:0000:0000:0254", "FD00:EC2::254");
const nameMeta = fc.constantFrom("metadata.google.internal", "metadata.goog");
const metadataAuthority = fc
  .tuple(
    fc.oneof(
      v4Meta.map((h) => ({ h, v6: false })),
      mapped.map((h) => ({ h, v6: true })),
      v6Meta.map((h) => ({ h, v6: true })),
      nameMeta.map((h) => ({ h, v6: false })),
    ),
    fc.boolean(), // trailing dot (names)
    fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    fc.boolean(), // brackets on a bare IPv6 without port
  )
  .chain(([{ h, v6 }, dot, p, br]) =>
    randomCase(h).map((cased) => {
      const host = !v6 && dot && /[a-z]/i.test(h) ? `${cased}.` : cased;
      if (v6) return p !== undefined || br ? `[${host}]${p !== undefined ? `:${p}` : ""}` : host;
      return p !== undefined ? `${host}:${p}` : host;
    }),
  );

const configs = fc.record(
  {
    stack: fc.oneof(fc.constantFrom("test", "mirror", "auto", "TEST", "", "both"), fc.integer(), fc.constant(null)),
    cache_cluster: fc.oneof(fc.constant(CACHE_CLUSTER), fc.string({ maxLength: 20 }), fc.integer()),
    stack_header: fc.oneof(fc.constantFrom("x-mirror-stack", "x-azar-mirror", "", ":authority", "X-Upper"), headerName, fc.integer()),
    stack_values: fc.oneof(
      fc.constant({ test: "false", mirror: "true" }),
      fc.record({ test: fc.string({ maxLength: 6 }), mirror: fc.string({ maxLength: 6 }) }),
      fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
    ),
    request_id_header: fc.oneof(fc.constant("x-request-id"), headerName, fc.constant("")),
    timeout_ms: fc.oneof(fc.integer({ min: -5, max: 100000 }), fc.double(), fc.string({ maxLength: 5 })),
    max_body_bytes: fc.oneof(fc.integer({ min: -5, max: 1 << 22 }), fc.constant(0), fc.double()),
    passthrough: fc.oneof(fc.array(fc.oneof(fc.domain(), fc.ipV4(), fc.constant("10.0.0.0/8"), fc.constant("::/0"), fc.string({ maxLength: 20 })), { maxLength: 4 }), fc.string({ maxLength: 10 })),
    buffer_bodies: fc.oneof(fc.boolean(), fc.constant("true"), fc.integer()),
    stack_label: fc.oneof(fc.constant("stack"), fc.string({ maxLength: 10 })),
    unknown_key: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: [] },
);

// ---- helpers -----------------------------------------------------------------------------

function baseHeaders(m: string, authority: string, p: string, rid: string | undefined, extra: Header[]): Header[] {
  const h: Header[] = [[":method", m], [":path", p], [":authority", authority], [":scheme", "http"]];
  if (rid !== undefined) h.push(["x-request-id", rid]);
  return [...h, ...extra];
}
const concat = (chunks: Uint8Array[]) => {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), (o += c.length));
  return out;
};

/** One host per stack (and buffer mode), reused across runs (streams are independent). */
const hosts = new Map<string, ProxyWasmHost>();
async function hostFor(stack: "test" | "mirror", buffer: boolean): Promise<ProxyWasmHost> {
  const k = `${stack}:${buffer}`;
  let h = hosts.get(k);
  if (!h) {
    h = await ProxyWasmHost.create(options(config(stack, { buffer_bodies: buffer, max_body_bytes: 2048 })).withAllowOnHeadersStopIteration(true).withWorkers(2));
    expect(h.configured).toBe(true);
    hosts.set(k, h);
  }
  return h;
}

describe("filter fuzz (fast-check, emulator)", () => {
  it("arbitrary configurations: configured or refused with an error log, never a trap", async () => {
    const h = await ProxyWasmHost.create(options(config("test")));
    await fc.assert(
      fc.asyncProperty(fc.oneof(configs.map((c) => JSON.stringify(c)), fc.string({ maxLength: 60 }), fc.jsonValue().map((v) => JSON.stringify(v))), async (conf) => {
        const before = h.getLogs(LogLevel.Error).length;
        const r = h.addRootContext({ configuration: conf });
        expect(h.failed, h.failMessage).toBe(false);
        if (!r.configured) expect(h.getLogs(LogLevel.Error).length).toBeGreaterThan(before);
      }),
      { numRuns: RUNS },
    );
  });

  it("a metadata endpoint in any spelling passes untouched on both stacks: same headers, same body, no dispatch", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("test", "mirror"), fc.boolean(), metadataAuthority, method, path, requestId, appHeaders, chunkedBody,
        async (stack, buffer, authority, m, p, rid, extra, chunks) => {
          const h = await hostFor(stack as "test" | "mirror", buffer);
          const calls = h.getPendingHttpCalls().length;
          const s = h.initializeHttpContext();
          const sent = baseHeaders(m, authority, p, rid, extra);
          const noBody = chunks.length === 0;
          expect(h.callOnRequestHeaders(s, sent, noBody), authority).toBe(Action.Continue);
          for (let i = 0; i < chunks.length; i++) h.callOnRequestBody(s, chunks[i], i === chunks.length - 1);
          const up = h.getUpstreamRequest(s);
          expect(up?.headers, authority).toEqual(sent);
          if (!noBody) expect(Buffer.from(up!.body).equals(Buffer.from(concat(chunks)))).toBe(true);
          expect(h.getPendingHttpCalls().length).toBe(calls);
          expect(h.getLocalResponse(s)).toBeUndefined();
          h.completeHttpContext(s);
          expect(h.failed, h.failMessage).toBe(false);
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });

  it("a metadata destination.address behind an ordinary authority passes untouched", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("test", "mirror"),
        fc.constantFrom("169.254.169.254:80", "[fd00:ec2::254]:80", "[::ffff:169.254.169.254]:80", "[::FFFF:A9FE:A9FE]:443", "100.100.100.200:80", "169.254.170.2:80"),
        fc.domain(), requestId, appHeaders,
        async (stack, address, authority, rid, extra) => {
          const h = await ProxyWasmHost.create(options(config(stack as "test")).withProperty(["destination", "address"], address));
          const s = h.initializeHttpContext();
          const sent = baseHeaders("GET", authority, "/latest/meta-data/", rid, extra);
          expect(h.callOnRequestHeaders(s, sent, true)).toBe(Action.Continue);
          expect(h.getUpstreamRequest(s)?.headers).toEqual(sent);
          expect(h.getPendingHttpCalls()).toHaveLength(0);
          expect(h.failed).toBe(false);
        },
      ),
      { numRuns: 30 },
    );
  });

  type CacheReply =
    | { kind: "fail"; how: "reset" | "no-healthy-upstream" | "timeout" }
    | { kind: "answer"; status: number; cache: string | undefined; headers: Header[]; body: Uint8Array };
  const cacheReply: fc.Arbitrary<CacheReply> = fc.oneof(
    fc.record({ kind: fc.constant("fail" as const), how: fc.constantFrom("reset" as const, "no-healthy-upstream" as const, "timeout" as const) }),
    fc.record({
      kind: fc.constant("answer" as const),
      status: fc.oneof(fc.constantFrom(200, 204, 304, 403, 404, 413, 500, 502, 503, 504), fc.integer({ min: 100, max: 599 })),
      cache: fc.option(fc.constantFrom("pass", "hit", "miss", "denied", "invalid", "", "weird"), { nil: undefined }),
      headers: appHeaders,
      body: fc.uint8Array({ maxLength: 3000 }),
    }),
  );

  it("tagged calls, any headers/body/cache answer: one stack header with the stack's value; the mirror never reaches the upstream; the test call is never lost", async () => {
    const seen = { testDispatched: 0, mirrorDispatched: 0, testFailedOpen: 0, mirrorRefusedAfterDispatch: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("test", "mirror"), fc.boolean(), ordinaryHost, port, method, path, requestId, appHeaders, chunkedBody, cacheReply,
        async (stack, buffer, hostname, p, m, pth, rid, extra, chunks, reply) => {
          const h = await hostFor(stack as "test" | "mirror", buffer);
          const authority = p === undefined ? hostname : `${hostname}:${p}`;
          const pending = new Set(h.getPendingHttpCalls().map((c) => `${c.worker}:${c.token}`));
          const s = h.initializeHttpContext();
          const sent = baseHeaders(m, authority, pth, rid, extra);
          const noBody = chunks.length === 0;
          h.callOnRequestHeaders(s, sent, noBody);
          for (let i = 0; i < chunks.length && h.getStreamState(s) !== "local-reply"; i++) h.callOnRequestBody(s, chunks[i], i === chunks.length - 1);
          const mine = h.getPendingHttpCalls().filter((c) => !pending.has(`${c.worker}:${c.token}`));
          expect(mine.length).toBeLessThanOrEqual(1);
          for (const call of mine) {
            const stackValues = call.headers.filter(([k]) => k === "x-mirror-stack").map(([, v]) => v);
            expect(stackValues).toEqual([stack]);
            expect(call.cluster).toBe(CACHE_CLUSTER);
            if (reply.kind === "fail") h.failHttpCall(call, reply.how);
            else {
              const headers: Header[] = [[":status", String(reply.status)], ...reply.headers.filter(([k]) => k !== "x-mirror-cache")];
              if (reply.cache !== undefined) headers.push(["x-mirror-cache", reply.cache]);
              h.respondToHttpCall(call, { headers, body: reply.body });
            }
          }
          expect(h.failed, h.failMessage).toBe(false);
          const state = h.getStreamState(s);
          const up = h.getUpstreamRequest(s);
          if (stack === "mirror") {
            // Fail closed: whatever happened, nothing of a mirror call went upstream unless it was
            // a passthrough (untouched: an authority the filter treats as metadata/excluded).
            if (up) {
              expect(mine).toHaveLength(0);
              expect(up.headers).toEqual(sent);
            } else expect(state).toBe("local-reply");
          } else {
            // Never lost: answered locally (by the cache) or continued upstream.
            expect(["local-reply", "upstream"]).toContain(state);
            if (up && mine.length) expect(up.headers.filter(([k]) => k === "x-mirror-stack").map(([, v]) => v)).toEqual(["test"]);
          }
          if (mine.length) seen[stack === "test" ? "testDispatched" : "mirrorDispatched"]++;
          if (mine.length && up && stack === "test") seen.testFailedOpen++;
          if (mine.length && state === "local-reply" && stack === "mirror" && reply.kind === "fail") seen.mirrorRefusedAfterDispatch++;
          h.completeHttpContext(s);
          expect(h.failed, h.failMessage).toBe(false);
        },
      ),
      { numRuns: RUNS * 2 },
    );
    // not vacuous: the generators reach every branch
    for (const [k, v] of Object.entries(seen)) expect(v, k).toBeGreaterThan(0);
  });

  it("arbitrary response headers and bodies through on_response_*: never a trap", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("test", "mirror"), metadataAuthority, fc.integer({ min: 100, max: 599 }), appHeaders, chunkedBody, async (stack, authority, status, headers, chunks) => {
        const h = await hostFor(stack as "test" | "mirror", false);
        const s = h.initializeHttpContext();
        h.callOnRequestHeaders(s, baseHeaders("GET", authority, "/", "rid", []), true);
        h.callOnResponseHeaders(s, [[":status", String(status)], ...headers], chunks.length === 0);
        for (let i = 0; i < chunks.length; i++) h.callOnResponseBody(s, chunks[i], i === chunks.length - 1);
        h.completeHttpContext(s);
        expect(h.failed, h.failMessage).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});
