// The whole flow on 127.0.0.1, without Docker: a sample upstream, a cloud-metadata stand-in, the
// real mirror-cache, and two stacks (test, mirror), each an app behind a Node sidecar that runs
// the real compiled filter in the proxy-wasm host emulator.
//
//   driver ──► test app ──► test sidecar (outbound, stack=test) ──► mirror-cache ──► upstream
//     │                          └─ metadata call, passthrough ──► metadata stand-in
//     └─(same x-request-id, Host …-shadow, slightly later)──►
//        mirror sidecar (inbound: restores Host) ──► mirror app ──► mirror sidecar (outbound,
//        stack=mirror) ──► mirror-cache (answers from the record, never the upstream)
//
// `startSandbox()` returns handles to every part and `stop()`; `runScript()` sends paired
// requests as Istio's mirror would; `summarize()` counts and checks the invariants of
// DESIGN.md. `npm run sandbox` (run.ts) and the e2e tests (test/e2e) use it; so will the soak.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { Agent } from "undici";
import { startApp, ALL_CALLS, type AppHandle, type AppSummary, type CallName } from "./app.ts";
import { startCache, type CacheHandle } from "./cache.ts";
import { startSidecar, type SidecarHandle } from "./sidecar.ts";
import { NO_STACK, startMetadataStandIn, startUpstream, type MetadataHandle, type UpstreamHandle } from "./upstream.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CACHE_CLUSTER = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";
export const METADATA_AUTHORITY = "169.254.169.254";
export const DEFAULT_API_AUTHORITY = "api.shop.svc.cluster.local:8080";
/** The connection buffer limit the shipped Envoy configurations set (envoy/sandbox/envoy-*.yaml
 * `per_connection_buffer_limit_bytes`, the Istio EnvoyFilters' LISTENER patch): 2 MiB, twice the
 * default max_body_bytes, so a chunked body that crosses max_body_bytes reaches the filter instead
 * of Envoy's 413. The sidecars use it by default so the flow mirrors the shipped config;
 * test/envoy/buffer-limits.test.ts checks the two agree. */
export const SHIPPED_BUFFER_LIMIT_BYTES = 2 * 1024 * 1024;

export interface SandboxOptions {
  /** Compiled filter (default: $MESH_MIRROR_FILTER_WASM, else `build/filter.wasm`; run `npm run build` first). */
  wasmPath?: string;
  /** MIRROR_CACHE_WAIT_MS for the service (default 3000; the contract's default is 10000). */
  cacheWaitMs?: number;
  /** More environment for the service (e.g. MIRROR_CACHE_STORE=redis, REDIS_URL). */
  cacheEnv?: Record<string, string>;
  /** Filter `buffer_bodies` (default true) and PluginConfig.allow_on_headers_stop_iteration
   * (default true): the EnvoyFilter deployment, where POST bodies are dispatched too. */
  bufferBodies?: boolean;
  allowOnHeadersStopIteration?: boolean;
  /** Filter `timeout_ms` for both stacks (default: test 15000, above the cache's connect +
   * upstream timeouts; mirror 5000, above `cacheWaitMs` so a waiting mirror call gets the cache's
   * own 504 miss — the same choice as envoy/sandbox and envoy/istio). */
  timeoutMs?: number;
  /** Extra filter configuration keys per listener (merged over the defaults). */
  filterOverrides?: { test?: Record<string, unknown>; mirror?: Record<string, unknown>; inbound?: Record<string, unknown> };
  /** Envoy's connection buffer limit on every sidecar (default SHIPPED_BUFFER_LIMIT_BYTES, as in
   * envoy/sandbox; Envoy's own default is 1 MiB): a body buffered past it gets Envoy's 413. */
  bufferLimitBytes?: number;
  /** Run the filter on the mirror's inbound listener (restores the `-shadow` host; default true). */
  mirrorInbound?: boolean;
  /** VM clones per emulator (Envoy worker threads; default 2). */
  workers?: number;
  /** The API's authority as the ingress sends it (default api.shop.svc.cluster.local:8080). */
  apiAuthority?: string;
  log?: (line: string) => void;
}

export interface InboundResult {
  status: number;
  summary: AppSummary | undefined;
  raw: string;
}

export interface PairResult {
  requestId: string;
  test: InboundResult;
  mirror: InboundResult;
}

export interface Sandbox {
  options: Required<Pick<SandboxOptions, "cacheWaitMs" | "bufferBodies">> & SandboxOptions;
  apiAuthority: string;
  wasmPath: string;
  upstream: UpstreamHandle;
  metadata: MetadataHandle;
  cache: CacheHandle;
  sidecars: { test: SidecarHandle; mirror: SidecarHandle; mirrorInbound?: SidecarHandle };
  apps: { test: AppHandle; mirror: AppHandle };
  filterConfigs: { test: Record<string, unknown>; mirror: Record<string, unknown>; inbound?: Record<string, unknown> };
  /** An inbound request to the test app, as the ingress sends it. */
  sendTest(requestId: string | undefined, path?: string): Promise<InboundResult>;
  /** Its mirrored copy: same request id, `-shadow` host, to the mirror pod's inbound listener. */
  sendMirror(requestId: string | undefined, path?: string): Promise<InboundResult>;
  /** Both, with Istio's fire-and-forget timing: the mirror copy `mirrorDelayMs` after the test
   * request was sent (negative: before it). */
  sendPair(requestId: string, opts?: { path?: string; mirrorDelayMs?: number }): Promise<PairResult>;
  /** Forget every count and record (sidecars, upstream, metadata stand-in, apps): a long run
   * (the soak) summarizes window by window. */
  reset(): void;
  stop(): Promise<void>;
}

export function shadowAuthority(authority: string): string {
  // Envoy inserts the suffix before the port: reviews:9080 -> reviews-shadow:9080.
  const m = /^(.*?)(:\d+)?$/.exec(authority)!;
  return `${m[1]}-shadow${m[2] ?? ""}`;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const wasmPath = options.wasmPath ?? process.env.MESH_MIRROR_FILTER_WASM ?? join(REPO_ROOT, "build", "filter.wasm");
  if (!existsSync(wasmPath)) throw new Error(`${wasmPath} does not exist: run \`npm run build\` first`);
  const log = options.log;
  const cacheWaitMs = options.cacheWaitMs ?? 3000;
  const bufferBodies = options.bufferBodies ?? true;
  const testTimeoutMs = options.timeoutMs ?? 15_000;
  const mirrorTimeoutMs = options.timeoutMs ?? Math.max(5000, cacheWaitMs + 2000);
  const apiAuthority = options.apiAuthority ?? DEFAULT_API_AUTHORITY;
  const stoppers: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => {});
    stoppers.length = 0;
  };

  try {
    const stackHeader = String(
      options.filterOverrides?.test?.stack_header ?? options.filterOverrides?.mirror?.stack_header ?? "x-mirror-stack",
    );
    const upstream = await startUpstream({ stackHeader });
    stoppers.push(() => upstream.stop());
    const metadata = await startMetadataStandIn({ stackHeader });
    stoppers.push(() => metadata.stop());

    const cache = await startCache({
      root: REPO_ROOT,
      log,
      env: {
        MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32",
        MIRROR_CACHE_WAIT_MS: String(cacheWaitMs),
        ...(options.cacheEnv ?? {}),
      },
    });
    stoppers.push(() => cache.stop());

    const base = { cache_cluster: CACHE_CLUSTER, buffer_bodies: bufferBodies };
    const filterConfigs = {
      test: { stack: "test", ...base, timeout_ms: testTimeoutMs, ...(options.filterOverrides?.test ?? {}) },
      mirror: { stack: "mirror", ...base, timeout_ms: mirrorTimeoutMs, ...(options.filterOverrides?.mirror ?? {}) },
      inbound:
        options.mirrorInbound === false
          ? undefined
          : { stack: "mirror", ...base, direction: "inbound", ...(options.filterOverrides?.inbound ?? {}) },
    };
    const clusters = { [CACHE_CLUSTER]: cache.address };
    // The address table: the metadata IP goes to its loopback stand-in; the filter still sees
    // 169.254.169.254 as :authority and destination.address.
    const routes = {
      [METADATA_AUTHORITY]: { address: metadata.address, destinationAddress: `${METADATA_AUTHORITY}:80` },
      [upstream.authority]: { address: upstream.authority },
    };
    const common = {
      wasm: wasmPath,
      clusters,
      routes,
      workers: options.workers,
      allowOnHeadersStopIteration: options.allowOnHeadersStopIteration ?? true,
      bufferLimitBytes: options.bufferLimitBytes ?? SHIPPED_BUFFER_LIMIT_BYTES,
      log,
    };
    const testSidecar = await startSidecar({ ...common, name: "test-outbound", direction: "outbound", filterConfig: filterConfigs.test });
    stoppers.push(() => testSidecar.stop());
    const mirrorSidecar = await startSidecar({ ...common, name: "mirror-outbound", direction: "outbound", filterConfig: filterConfigs.mirror });
    stoppers.push(() => mirrorSidecar.stop());

    const appOpts = { upstream: upstream.authority, metadata: METADATA_AUTHORITY, stackHeader };
    const testApp = await startApp({ ...appOpts, name: "test-app", sidecar: testSidecar.address });
    stoppers.push(() => testApp.stop());
    const mirrorApp = await startApp({ ...appOpts, name: "mirror-app", sidecar: mirrorSidecar.address });
    stoppers.push(() => mirrorApp.stop());

    let mirrorInbound: SidecarHandle | undefined;
    if (filterConfigs.inbound) {
      mirrorInbound = await startSidecar({
        ...common,
        routes: {},
        name: "mirror-inbound",
        direction: "inbound",
        inboundTarget: mirrorApp.address,
        filterConfig: filterConfigs.inbound,
      });
      stoppers.push(() => mirrorInbound!.stop());
    }

    const client = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
    stoppers.push(() => client.close());

    async function send(target: string, host: string, requestId: string | undefined, path: string): Promise<InboundResult> {
      const headers: Record<string, string> = { host };
      if (requestId !== undefined) headers["x-request-id"] = requestId;
      const r = await client.request({ origin: `http://${target}`, path, method: "GET", headers });
      const raw = await r.body.text();
      let summary: AppSummary | undefined;
      try {
        summary = JSON.parse(raw) as AppSummary;
      } catch {
        summary = undefined;
      }
      return { status: r.statusCode, summary, raw };
    }

    const sandbox: Sandbox = {
      options: { ...options, cacheWaitMs, bufferBodies },
      apiAuthority,
      wasmPath,
      upstream,
      metadata,
      cache,
      sidecars: { test: testSidecar, mirror: mirrorSidecar, mirrorInbound },
      apps: { test: testApp, mirror: mirrorApp },
      filterConfigs,
      sendTest: (rid, path = "/api/checkout") => send(testApp.address, apiAuthority, rid, path),
      sendMirror: (rid, path = "/api/checkout") =>
        mirrorInbound
          ? send(mirrorInbound.address, shadowAuthority(apiAuthority), rid, path)
          : send(mirrorApp.address, apiAuthority, rid, path),
      async sendPair(requestId, opts = {}) {
        const path = opts.path ?? "/api/checkout";
        const delay = opts.mirrorDelayMs ?? 5;
        const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
        const first = delay >= 0 ? sandbox.sendTest(requestId, path) : sandbox.sendMirror(requestId, path);
        first.catch(() => {}); // awaited below; no unhandled rejection while sleeping
        await sleep(Math.abs(delay));
        const second = delay >= 0 ? sandbox.sendMirror(requestId, path) : sandbox.sendTest(requestId, path);
        const [a, b] = await Promise.all([first, second]);
        return delay >= 0 ? { requestId, test: a, mirror: b } : { requestId, test: b, mirror: a };
      },
      reset() {
        upstream.reset();
        metadata.requests.length = 0;
        for (const sc of [testSidecar, mirrorSidecar, mirrorInbound]) sc?.reset();
        for (const app of [testApp, mirrorApp]) {
          app.stats.inbound = 0;
          app.stats.outbound = 0;
          app.stats.outboundByCall = {};
        }
      },
      stop: stopAll,
    };
    return sandbox;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Scripted runs and the invariants

export type Step =
  | { kind: "pair"; requestId: string; path?: string; mirrorDelayMs?: number; phase?: string }
  | { kind: "mirror-only"; requestId: string; path?: string; phase?: string }
  | { kind: "test-only"; requestId: string | undefined; path?: string; phase?: string };

export interface StepResult {
  step: Step;
  phase: string;
  test?: InboundResult;
  mirror?: InboundResult;
}

/** Run steps with at most `concurrency` in flight, in order of start. */
export async function runSteps(sandbox: Sandbox, steps: Step[], concurrency = 4): Promise<StepResult[]> {
  const results: StepResult[] = new Array(steps.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < steps.length) {
      const i = next++;
      const step = steps[i];
      const phase = step.phase ?? "default";
      if (step.kind === "pair") {
        const r = await sandbox.sendPair(step.requestId, { path: step.path, mirrorDelayMs: step.mirrorDelayMs });
        results[i] = { step, phase, test: r.test, mirror: r.mirror };
      } else if (step.kind === "mirror-only") {
        results[i] = { step, phase, mirror: await sandbox.sendMirror(step.requestId, step.path) };
      } else {
        results[i] = { step, phase, test: await sandbox.sendTest(step.requestId, step.path) };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return results;
}

/** The part of an app's answer that must be identical between the stacks. */
export function comparable(r: InboundResult | undefined): unknown {
  if (!r?.summary) return { status: r?.status, raw: r?.raw };
  const { requestId, host, path, downstream } = r.summary;
  return { status: r.status, requestId, host, path, downstream };
}

export function bodiesMatch(r: StepResult): boolean {
  return isDeepStrictEqual(comparable(r.test), comparable(r.mirror));
}

export interface StackRow {
  stack: "test" | "mirror";
  inbound: number;
  calls: number;
  dispatched: number;
  hits: number;
  misses: number;
  pass: number;
  passthroughs: number;
  failedOpen: number;
  refused: number;
  upstreamHits: number;
  directToUpstream: number;
}

export interface Summary {
  rows: StackRow[];
  upstreamTotal: number;
  upstreamByStack: Record<string, number>;
  metadataHits: number;
  metadataTagged: number;
  metadataViaCache: number;
  pairs: number;
  bodyMismatches: number;
  /** The filter's own counters (Envoy stats `mesh_mirror.*`) per sidecar listener. */
  filterCounters: Record<string, Record<string, number>>;
  violations: string[];
}

export const FILTER_COUNTERS = ["tagged", "passthrough", "dispatched", "answered", "failed_open", "refused", "no_request_id", "shadow_restored"];

/** Counts and the invariant checks over a run's results (and the parts' own counters). */
export function summarize(sandbox: Sandbox, results: StepResult[], expectations: { cacheDownPhases?: string[] } = {}): Summary {
  const testValue = String((sandbox.filterConfigs.test.stack_values as { test?: string } | undefined)?.test ?? "test");
  const mirrorValue = String(
    (sandbox.filterConfigs.mirror.stack_values as { mirror?: string } | undefined)?.mirror ?? "mirror",
  );
  const violations: string[] = [];
  const up = sandbox.upstream.stats;
  const upAddr = sandbox.upstream.authority;

  function row(stack: "test" | "mirror", sc: SidecarHandle, app: AppHandle, value: string): StackRow {
    return {
      stack,
      inbound: app.stats.inbound,
      calls: sc.stats.requests,
      dispatched: sc.records.reduce((n, r) => n + r.dispatches.length, 0),
      hits: sc.stats.cacheAnswers.hit ?? 0,
      misses: sc.stats.cacheAnswers.miss ?? 0,
      pass: sc.stats.cacheAnswers.pass ?? 0,
      passthroughs: sc.stats.outcomes.passthrough,
      failedOpen: sc.stats.outcomes["fail-open"],
      refused: sc.stats.outcomes.refused,
      // What reached the upstream on this stack's behalf: calls the cache forwarded (its `pass`
      // answers) plus calls the sidecar let through to it. (The cache drops the stack header when
      // forwarding, so the upstream's by-header count cannot tell them apart.)
      upstreamHits: (sc.stats.cacheAnswers.pass ?? 0) + (sc.stats.forwards[upAddr] ?? 0),
      directToUpstream: sc.stats.forwards[upAddr] ?? 0,
    };
  }
  const rows = [
    row("test", sandbox.sidecars.test, sandbox.apps.test, testValue),
    row("mirror", sandbox.sidecars.mirror, sandbox.apps.mirror, mirrorValue),
  ];

  // 1. A mirror-stack call never reaches a real upstream.
  if (rows[1].upstreamHits !== 0) violations.push(`${rows[1].upstreamHits} mirror call(s) reached the upstream (cache pass or direct)`);
  if ((up.byStack[mirrorValue] ?? 0) !== 0) violations.push(`upstream saw ${up.byStack[mirrorValue]} call(s) tagged ${mirrorValue}`);
  if ((sandbox.sidecars.mirror.stats.forwards[upAddr] ?? 0) !== 0)
    violations.push(`mirror sidecar sent ${sandbox.sidecars.mirror.stats.forwards[upAddr]} request(s) straight to the upstream`);
  const mirrorRids = new Set(results.filter((r) => r.mirror && r.step.kind !== "test-only").map((r) => r.step.requestId));
  const testRids = new Set(results.filter((r) => r.test).map((r) => r.step.requestId));
  for (const req of up.requests) {
    if (req.requestId && mirrorRids.has(req.requestId) && !testRids.has(req.requestId))
      violations.push(`upstream saw request id ${req.requestId}, which only the mirror sent`);
  }
  // ... and every test call reached it exactly once (not lost, not duplicated by a mirror).
  const testUpstreamCalls = sandbox.sidecars.test.records.filter((r) => r.authority === upAddr).length;
  if (up.total !== testUpstreamCalls)
    violations.push(`upstream got ${up.total} call(s); the test app made ${testUpstreamCalls} upstream call(s)`);

  // 2. A test-stack call is never lost because the mirror machinery failed.
  for (const r of results) {
    if (!r.test) continue;
    for (const d of r.test.summary?.downstream ?? []) {
      if (d.status !== 200) violations.push(`[${r.phase}] test ${r.step.requestId} ${d.call}: status ${d.status}`);
    }
    if (r.test.status !== 200 || !r.test.summary) violations.push(`[${r.phase}] test ${r.step.requestId}: app answered ${r.test.status}`);
  }

  // 3. A metadata-endpoint call is never rerouted or tagged.
  const metadataCalls =
    (sandbox.apps.test.stats.outboundByCall.metadata ?? 0) + (sandbox.apps.mirror.stats.outboundByCall.metadata ?? 0);
  const md = sandbox.metadata.requests;
  const metadataTagged = md.filter((r) => r.stack !== undefined).length;
  const allDispatches = [sandbox.sidecars.test, sandbox.sidecars.mirror].flatMap((s) => s.records.flatMap((r) => r.dispatches));
  const metadataViaCache = allDispatches.filter((d) => d.authority.startsWith(METADATA_AUTHORITY)).length;
  if (md.length !== metadataCalls) violations.push(`metadata stand-in saw ${md.length} call(s); apps made ${metadataCalls}`);
  if (metadataTagged) violations.push(`${metadataTagged} metadata call(s) arrived with a stack header`);
  if (metadataViaCache) violations.push(`${metadataViaCache} metadata call(s) were dispatched to the cache`);
  for (const sc of [sandbox.sidecars.test, sandbox.sidecars.mirror]) {
    for (const r of sc.records) {
      if (r.authority.startsWith(METADATA_AUTHORITY) && r.outcome !== "passthrough")
        violations.push(`${sc.name}: metadata call ${r.requestId} was ${r.outcome}`);
    }
  }

  // 4. Mirror and test calls of the same key get byte-identical bodies (healthy phases).
  const cacheDown = new Set(expectations.cacheDownPhases ?? []);
  const pairs = results.filter((r) => r.step.kind === "pair" && !cacheDown.has(r.phase));
  const mismatched = pairs.filter((r) => !bodiesMatch(r));
  for (const r of mismatched.slice(0, 5)) {
    violations.push(
      `[${r.phase}] ${r.step.requestId}: test and mirror differ:\n    test:   ${JSON.stringify(comparable(r.test))}\n    mirror: ${JSON.stringify(comparable(r.mirror))}`,
    );
  }

  // 5. Cache down: the mirror is refused (503 unavailable) for calls that needed the cache.
  for (const r of results.filter((x) => cacheDown.has(x.phase) && x.mirror)) {
    for (const [i, d] of (r.mirror!.summary?.downstream ?? []).entries()) {
      if (d.call === "metadata") continue;
      const verdict = r.mirror!.summary!.observed[i]?.xMirrorCache;
      if (d.status !== 503 || verdict !== "unavailable")
        violations.push(`[${r.phase}] mirror ${r.step.requestId} ${d.call}: expected 503 unavailable, got ${d.status} ${verdict}`);
    }
  }

  // 6. A mirror call whose test call never happened: 504 miss, surfaced to the mirror app.
  for (const r of results.filter((x) => x.step.kind === "mirror-only")) {
    for (const [i, d] of (r.mirror?.summary?.downstream ?? []).entries()) {
      if (d.call === "metadata") continue;
      const verdict = r.mirror!.summary!.observed[i]?.xMirrorCache;
      if (d.status !== 504 || verdict !== "miss")
        violations.push(`[${r.phase}] mirror-only ${r.step.requestId} ${d.call}: expected 504 miss, got ${d.status} ${verdict}`);
    }
  }

  for (const sc of [sandbox.sidecars.test, sandbox.sidecars.mirror, sandbox.sidecars.mirrorInbound]) {
    for (const e of sc?.stats.errors ?? []) violations.push(`sidecar error: ${e}`);
  }

  const filterCounters: Record<string, Record<string, number>> = {};
  for (const sc of [sandbox.sidecars.test, sandbox.sidecars.mirror, sandbox.sidecars.mirrorInbound]) {
    if (!sc) continue;
    filterCounters[sc.name] = Object.fromEntries(FILTER_COUNTERS.map((n) => [n, sc.counter(`mesh_mirror.${n}`)]));
  }
  // The mirror stack fails closed: its filter never lets a call continue after a cache failure.
  if (filterCounters["mirror-outbound"]?.failed_open) violations.push(`the mirror filter failed open ${filterCounters["mirror-outbound"].failed_open} time(s)`);

  return {
    rows,
    upstreamTotal: up.total,
    upstreamByStack: { ...up.byStack },
    metadataHits: md.length,
    metadataTagged,
    metadataViaCache,
    pairs: pairs.length,
    bodyMismatches: mismatched.length,
    filterCounters,
    violations,
  };
}

export function formatSummary(s: Summary): string {
  const cols: Array<[keyof StackRow, string]> = [
    ["stack", "stack"],
    ["inbound", "inbound"],
    ["calls", "calls"],
    ["dispatched", "dispatched"],
    ["pass", "pass"],
    ["hits", "hits"],
    ["misses", "misses"],
    ["passthroughs", "passthroughs"],
    ["failedOpen", "failed-open"],
    ["refused", "refused"],
    ["upstreamHits", "upstream hits"],
    ["directToUpstream", "direct→upstream"],
  ];
  const table = [cols.map(([, h]) => h), ...s.rows.map((r) => cols.map(([k]) => String(r[k])))];
  const widths = cols.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const out = [line(table[0]), widths.map((w) => "-".repeat(w)).join("  "), ...table.slice(1).map(line)];
  out.push("");
  out.push(
    `upstream: ${s.upstreamTotal} call(s) — by the stack header it saw: ${Object.entries(s.upstreamByStack)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ") || "none"}`,
  );
  out.push(`metadata stand-in: ${s.metadataHits} call(s), ${s.metadataTagged} tagged, ${s.metadataViaCache} via the cache`);
  out.push(`pairs compared: ${s.pairs}, body mismatches: ${s.bodyMismatches}`);
  for (const [name, c] of Object.entries(s.filterCounters)) {
    const shown = Object.entries(c).filter(([, v]) => v > 0);
    out.push(`filter counters, ${name}: ${shown.map(([k, v]) => `${k}=${v}`).join(" ") || "all 0"}`);
  }
  out.push(s.violations.length ? `INVARIANTS BROKEN (${s.violations.length}):\n  - ${s.violations.join("\n  - ")}` : "invariants: all hold");
  return out.join("\n");
}

export { ALL_CALLS, NO_STACK };
export type { CallName };
