// `npm run soak` — bounded soak run through the e2e sandbox (envoy/node-sandbox): N concurrent
// request-id pairs (a test request and its mirrored copy, same x-request-id, Istio-like timing)
// for a fixed time, through the real filter in the proxy-wasm emulator and the real mirror-cache
// child process. Reports pairs completed, cache hits and misses, mismatched bodies (must be 0),
// upstream calls made on the mirror's behalf (must be 0), lost test calls (must be 0), p50/p99
// latency of the inbound requests, and the service's RSS sampled over time. Writes
// bench/results/soak.json; exits non-zero when an invariant broke.
//
//   npm run soak                             # 60 s, 8 pairs in flight
//   npm run soak -- --seconds 300 --pairs 16
//   npm run soak -- --redis redis://127.0.0.1:6379   # on the Redis store
//
// The counts are exact: every `windowSeconds` the workers pause at a barrier, the window's counts
// are taken and the sandbox's per-request records are cleared (bounded memory for long runs).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { bodiesMatch, startSandbox, type InboundResult, type Sandbox, type SandboxOptions } from "../envoy/node-sandbox/sandbox.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface SoakOptions {
  seconds?: number;
  /** Pairs in flight at once. */
  pairs?: number;
  /** Barrier/accounting window (default 10 s, shorter runs use the run length). */
  windowSeconds?: number;
  /** Service environment (e.g. the Redis store). */
  cacheEnv?: Record<string, string>;
  /** Write bench/results/soak.json (default true). */
  write?: boolean;
  outFile?: string;
  log?: (line: string) => void;
  /** More sandbox options (tests use it for a deliberately broken mirror: the checks must fire). */
  sandbox?: Partial<SandboxOptions>;
}

export interface SoakResult {
  command: string;
  date: string;
  durationSeconds: number;
  concurrency: number;
  store: string;
  pairsCompleted: number;
  testCalls: number;
  mirrorCalls: number;
  hits: number;
  misses: number;
  mirrorRefused: number;
  mismatchedBodies: number;
  mirrorToUpstream: number;
  testCallsLost: number;
  upstreamCalls: number;
  metadataCalls: number;
  metadataTaggedOrRerouted: number;
  sidecarErrors: number;
  latencyMs: { test: { p50: number; p99: number; max: number }; mirror: { p50: number; p99: number; max: number } };
  rss: {
    serviceMiB: { start: number; end: number; max: number };
    driverMiB: { start: number; end: number; max: number };
    samples: Array<{ t: number; serviceMiB: number; driverMiB: number }>;
  };
  violations: string[];
  ok: boolean;
}

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function serviceRss(sb: Sandbox): Promise<number | undefined> {
  const text = await sb.cache.metrics();
  const m = text && /^process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

export async function runSoak(o: SoakOptions = {}): Promise<SoakResult> {
  const seconds = o.seconds ?? 60;
  const concurrency = Math.max(1, o.pairs ?? 8);
  const windowMs = Math.min(seconds, o.windowSeconds ?? 10) * 1000;
  const log = o.log ?? (() => {});
  const sb = await startSandbox({ cacheWaitMs: 3000, ...(o.sandbox ?? {}), cacheEnv: o.cacheEnv });
  const violations: string[] = [];
  const lat = { test: [] as number[], mirror: [] as number[] };
  const totals = {
    pairs: 0, testCalls: 0, mirrorCalls: 0, hits: 0, misses: 0, refused: 0, mismatched: 0, mirrorToUpstream: 0,
    testLost: 0, upstream: 0, metadata: 0, metadataBad: 0, sidecarErrors: 0,
  };
  const samples: SoakResult["rss"]["samples"] = [];
  const t0 = Date.now();
  const sample = async () => {
    const s = await serviceRss(sb);
    samples.push({ t: round((Date.now() - t0) / 1000), serviceMiB: round((s ?? 0) / MiB), driverMiB: round(process.memoryUsage().rss / MiB) });
  };

  let paused = false;
  let stopped = false;
  let active = 0;
  let seq = 0;
  const delays = [5, 0, 25, -20, 10];
  const runId = `soak-${Date.now().toString(36)}`;

  async function timed(f: () => Promise<InboundResult>): Promise<[InboundResult, number]> {
    const s = performance.now();
    const r = await f();
    return [r, performance.now() - s];
  }

  function account(rid: string, test: InboundResult, mirror: InboundResult): void {
    totals.pairs++;
    const ts = test.summary;
    const ms = mirror.summary;
    if (test.status !== 200 || !ts) {
      totals.testLost++;
      violations.push(`${rid}: test app answered ${test.status}`);
    }
    for (const d of ts?.downstream ?? []) {
      if (d.call !== "metadata") totals.testCalls++;
      if (d.status !== 200) {
        totals.testLost++;
        if (violations.length < 50) violations.push(`${rid}: test ${d.call} got ${d.status}`);
      }
    }
    for (const [i, d] of (ms?.downstream ?? []).entries()) {
      if (d.call === "metadata") continue;
      totals.mirrorCalls++;
      const v = ms!.observed[i]?.xMirrorCache;
      if (v === "hit") totals.hits++;
      else if (v === "miss") totals.misses++;
      else totals.refused++;
    }
    if (!bodiesMatch({ step: { kind: "pair", requestId: rid }, phase: "soak", test, mirror })) {
      totals.mismatched++;
      if (violations.length < 50) violations.push(`${rid}: test and mirror bodies differ`);
    }
  }

  async function worker(): Promise<void> {
    while (!stopped) {
      if (paused) {
        await sleep(5);
        continue;
      }
      active++;
      try {
        const rid = `${runId}-${++seq}`;
        const delay = delays[seq % delays.length];
        let test: [InboundResult, number];
        let mirror: [InboundResult, number];
        if (delay >= 0) {
          const tp = timed(() => sb.sendTest(rid));
          await sleep(delay);
          mirror = await timed(() => sb.sendMirror(rid));
          test = await tp;
        } else {
          const mp = timed(() => sb.sendMirror(rid));
          await sleep(-delay);
          test = await timed(() => sb.sendTest(rid));
          mirror = await mp;
        }
        lat.test.push(test[1]);
        lat.mirror.push(mirror[1]);
        account(rid, test[0], mirror[0]);
      } catch (err) {
        totals.testLost++;
        violations.push(`driver: ${(err as Error).message}`);
      } finally {
        active--;
      }
    }
  }

  /** At a barrier (nothing in flight): take the window's counts from the parts, then clear them. */
  function closeWindow(): void {
    const up = sb.upstream.stats;
    const testSc = sb.sidecars.test.stats;
    const mirrorSc = sb.sidecars.mirror.stats;
    const fromMirror = (up.byStack.mirror ?? 0) + (mirrorSc.forwards[sb.upstream.authority] ?? 0) + (mirrorSc.cacheAnswers.pass ?? 0);
    totals.mirrorToUpstream += fromMirror;
    if (fromMirror) violations.push(`window at ${round((Date.now() - t0) / 1000)} s: ${fromMirror} mirror call(s) reached the upstream`);
    const explained = (testSc.cacheAnswers.pass ?? 0) + (testSc.forwards[sb.upstream.authority] ?? 0);
    if (up.total !== explained) violations.push(`window at ${round((Date.now() - t0) / 1000)} s: upstream got ${up.total} calls, the test stack made ${explained}`);
    totals.upstream += up.total;
    totals.metadata += sb.metadata.requests.length;
    const badMd = sb.metadata.requests.filter((r) => r.stack !== undefined).length;
    totals.metadataBad += badMd;
    if (badMd) violations.push(`${badMd} metadata call(s) arrived tagged`);
    for (const sc of [sb.sidecars.test, sb.sidecars.mirror, sb.sidecars.mirrorInbound]) {
      for (const r of sc?.records ?? []) {
        if (r.authority.startsWith("169.254.169.254") && (r.outcome !== "passthrough" || r.dispatches.length)) {
          totals.metadataBad++;
          violations.push(`${sc!.name}: metadata call ${r.requestId} was ${r.outcome}`);
        }
      }
      const errs = sc?.stats.errors ?? [];
      totals.sidecarErrors += errs.length;
      for (const e of errs.slice(0, 5)) violations.push(`sidecar error: ${e}`);
    }
    sb.reset();
  }

  try {
    await sample();
    const workers = Array.from({ length: concurrency }, worker);
    const end = t0 + seconds * 1000;
    let windowEnd = t0 + windowMs;
    let nextSample = Date.now() + 1000;
    while (Date.now() < end) {
      await sleep(Math.max(10, Math.min(200, end - Date.now())));
      if (Date.now() >= nextSample) {
        nextSample += 1000;
        await sample();
      }
      if (Date.now() >= windowEnd || Date.now() >= end) {
        paused = true;
        while (active > 0) await sleep(5);
        closeWindow();
        log(`soak: ${round((Date.now() - t0) / 1000)} s, ${totals.pairs} pairs, ${totals.hits} hits, ${totals.misses} misses, ${violations.length} violation(s)`);
        windowEnd = Date.now() + windowMs;
        paused = false;
      }
    }
    stopped = true;
    paused = false;
    await Promise.all(workers);
    closeWindow();
    await sample();
    const mirrorFailedOpen = sb.sidecars.mirror.counter("mesh_mirror.failed_open");
    if (mirrorFailedOpen) {
      totals.mirrorToUpstream += mirrorFailedOpen;
      violations.push(`the mirror filter failed open ${mirrorFailedOpen} time(s)`);
    }
    if (!sb.cache.running) violations.push("the mirror-cache process died");
  } finally {
    await sb.stop();
  }

  const durationSeconds = round((Date.now() - t0) / 1000);
  const sT = [...lat.test].sort((a, b) => a - b);
  const sM = [...lat.mirror].sort((a, b) => a - b);
  const svc = samples.map((s) => s.serviceMiB).filter((x) => x > 0);
  const drv = samples.map((s) => s.driverMiB);
  if (totals.pairs === 0) violations.push("no pair completed");
  const result: SoakResult = {
    command: `npm run soak -- --seconds ${seconds} --pairs ${concurrency}${o.cacheEnv?.MIRROR_CACHE_STORE === "redis" ? " --redis <url>" : ""}`,
    date: new Date().toISOString(),
    durationSeconds,
    concurrency,
    store: o.cacheEnv?.MIRROR_CACHE_STORE ?? "memory",
    pairsCompleted: totals.pairs,
    testCalls: totals.testCalls,
    mirrorCalls: totals.mirrorCalls,
    hits: totals.hits,
    misses: totals.misses,
    mirrorRefused: totals.refused,
    mismatchedBodies: totals.mismatched,
    mirrorToUpstream: totals.mirrorToUpstream,
    testCallsLost: totals.testLost,
    upstreamCalls: totals.upstream,
    metadataCalls: totals.metadata,
    metadataTaggedOrRerouted: totals.metadataBad,
    sidecarErrors: totals.sidecarErrors,
    latencyMs: {
      test: { p50: round(pct(sT, 50)), p99: round(pct(sT, 99)), max: round(sT.at(-1) ?? 0) },
      mirror: { p50: round(pct(sM, 50)), p99: round(pct(sM, 99)), max: round(sM.at(-1) ?? 0) },
    },
    rss: {
      serviceMiB: { start: svc[0] ?? 0, end: svc.at(-1) ?? 0, max: Math.max(0, ...svc) },
      driverMiB: { start: drv[0] ?? 0, end: drv.at(-1) ?? 0, max: Math.max(0, ...drv) },
      samples,
    },
    violations,
    ok: violations.length === 0,
  };
  if (o.write !== false) {
    const out = o.outFile ?? join(ROOT, "bench", "results", "soak.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  }
  return result;
}

export function formatSoak(r: SoakResult): string {
  const l = r.latencyMs;
  return [
    `soak (${r.store} store): ${r.durationSeconds} s, ${r.concurrency} pairs in flight — ${r.date}`,
    `pairs completed            ${r.pairsCompleted}`,
    `test calls / mirror calls  ${r.testCalls} / ${r.mirrorCalls}`,
    `mirror hits / misses       ${r.hits} / ${r.misses}   (refused ${r.mirrorRefused})`,
    `mismatched bodies          ${r.mismatchedBodies}   (must be 0)`,
    `mirror → upstream calls    ${r.mirrorToUpstream}   (must be 0)`,
    `test calls lost            ${r.testCallsLost}   (must be 0)`,
    `upstream calls             ${r.upstreamCalls}; metadata calls ${r.metadataCalls} (${r.metadataTaggedOrRerouted} tagged/rerouted)`,
    `latency test   p50 ${l.test.p50} ms  p99 ${l.test.p99} ms  max ${l.test.max} ms`,
    `latency mirror p50 ${l.mirror.p50} ms  p99 ${l.mirror.p99} ms  max ${l.mirror.max} ms`,
    `service RSS    start ${r.rss.serviceMiB.start} MiB, end ${r.rss.serviceMiB.end} MiB, max ${r.rss.serviceMiB.max} MiB (${r.rss.samples.length} samples)`,
    `driver RSS     start ${r.rss.driverMiB.start} MiB, end ${r.rss.driverMiB.end} MiB (sidecars + apps + upstream, in-process)`,
    r.ok ? "invariants: all hold" : `INVARIANTS BROKEN (${r.violations.length}):\n  - ${r.violations.slice(0, 20).join("\n  - ")}`,
  ].join("\n");
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string" },
      pairs: { type: "string" },
      window: { type: "string" },
      redis: { type: "string" },
      out: { type: "string" },
    },
  });
  const num = (v: string | undefined, name: string, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      console.error(`--${name} must be a positive number (got ${v})`);
      process.exit(2);
    }
    return n;
  };
  runSoak({
    seconds: num(values.seconds, "seconds", 60),
    pairs: Math.floor(num(values.pairs, "pairs", 8)),
    windowSeconds: num(values.window, "window", 10),
    cacheEnv: values.redis ? { MIRROR_CACHE_STORE: "redis", REDIS_URL: values.redis } : undefined,
    outFile: values.out,
    log: (l) => console.error(l),
  }).then(
    (r) => {
      console.log(formatSoak(r));
      console.log(`written: ${values.out ?? "bench/results/soak.json"}`);
      process.exit(r.ok ? 0 : 1);
    },
    (err) => {
      console.error(`soak failed: ${(err as Error).stack ?? err}`);
      process.exit(2);
    },
  );
}
