// Filter benchmark (issue 2 targets), run in the proxy-wasm host emulator:
//   per-request cost of build/noop.wasm, of build/filter.wasm on the passthrough path
//   (authority 169.254.169.254) and on the tagged path (headers + dispatch + cache answer +
//   local reply + stream end); ratios to noop; release .wasm size; VM memory before/after
//   100,000 requests. Prints a table and writes bench/results/filter.json.
// Run: npx tsx bench/filter.ts   (npm run bench builds first)
// Options: --iterations N (per measured round, default 50000), --rounds N (default 5).
import { mkdirSync, statSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EmulatorOptions, LogLevel, ProxyWasmHost, type Header, type HttpCall } from "../test/proxy-wasm-host/index.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const FILTER = join(ROOT, "build", "filter.wasm");
const NOOP = join(ROOT, "build", "noop.wasm");
const OUT = join(ROOT, "bench", "results", "filter.json");
const CACHE = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";
const CONFIG = JSON.stringify({ stack: "test", cache_cluster: CACHE });

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ITER = arg("iterations", 50_000);
const ROUNDS = arg("rounds", 5);
const WARMUP = 5_000;
const MEMORY_REQUESTS = 100_000;

for (const f of [FILTER, NOOP]) {
  if (!existsSync(f)) {
    console.error(`${f} is missing: run \`npm run build\` first (npm run bench does).`);
    process.exit(1);
  }
}

async function host(file: string): Promise<ProxyWasmHost> {
  const h = await ProxyWasmHost.create(
    new EmulatorOptions()
      .withWasmFile(file)
      .withPluginConfiguration(CONFIG)
      .withClusters([CACHE])
      .withPluginName("mesh-mirror.mesh-mirror")
      .withProperty(["destination", "address"], "10.96.0.20:80")
      // Istio's default proxy log level: info/debug lines are not emitted (contract.md §9).
      .withLogLevel(LogLevel.Warn),
  );
  if (!h.configured) throw new Error(`${file}: on_configure refused the bench configuration:\n${h.getLogs().join("\n")}`);
  return h;
}

const RESPONSE: Header[] = [[":status", "200"], ["content-type", "application/json"], ["content-length", "2"]];
const requestHeaders = (authority: string, id: number): Header[] => [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/v1/items?page=2"],
  [":authority", authority],
  ["user-agent", "bench/1.0"],
  ["accept", "application/json"],
  ["x-request-id", `5f0c7a52-1a0b-4a3c-9a53-${String(id).padStart(12, "0")}`],
];

type Scenario = (h: ProxyWasmHost, i: number) => void;

/** Request headers → upstream → response headers (Envoy ends the stream) → released. */
const upstreamPath = (authority: string): Scenario => (h, i) => {
  const s = h.initializeHttpContext();
  h.callOnRequestHeaders(s, requestHeaders(authority, i), true);
  h.callOnResponseHeaders(s, RESPONSE, true);
  h.releaseHttpContext(s);
};

/** Tagged: request headers → dispatch → cache answers (x-mirror-cache) → local reply → end. */
function taggedPath(h: ProxyWasmHost): Scenario {
  let call: HttpCall | undefined;
  h.on("httpCall", (c) => (call = c));
  // Built once, body already as bytes: per iteration the harness only hands the same answer
  // over (the no-op/passthrough cases likewise pass one prebuilt RESPONSE).
  const answer = {
    headers: [[":status", "200"], ["x-mirror-cache", "hit"], ["content-type", "application/json"]] as Header[],
    body: new TextEncoder().encode('{"ok":true}'),
  };
  return (hh, i) => {
    const s = hh.initializeHttpContext();
    call = undefined;
    hh.callOnRequestHeaders(s, requestHeaders("api.example.com", i), true);
    if (!call) throw new Error("tagged path: the filter did not dispatch");
    hh.respondToHttpCall(call, answer);
    if (hh.getStreamState(s) !== "local-reply") throw new Error(`tagged path: expected a local reply, got ${hh.getStreamState(s)}`);
    hh.releaseHttpContext(s);
  };
}

function measure(h: ProxyWasmHost, run: Scenario, n: number, offset: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) run(h, offset + i);
  return Number(process.hrtime.bigint() - t0) / n;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const noopHost = await host(NOOP);
  const passHost = await host(FILTER);
  const tagHost = await host(FILTER);
  const scenarios: Array<[string, ProxyWasmHost, Scenario]> = [
    ["noop", noopHost, upstreamPath("169.254.169.254")],
    ["passthrough", passHost, upstreamPath("169.254.169.254")],
    ["tagged", tagHost, taggedPath(tagHost)],
  ];
  // Sanity: passthrough really is passthrough (no dispatch, request untouched upstream).
  {
    const s = passHost.initializeHttpContext();
    passHost.callOnRequestHeaders(s, requestHeaders("169.254.169.254", 0), true);
    const up = passHost.getUpstreamRequest(s);
    if (!up || passHost.getPendingHttpCalls().length > 0) throw new Error("passthrough path: request did not go upstream untouched");
    passHost.completeHttpContext(s);
    passHost.releaseHttpContext(s);
  }
  for (const [, h, run] of scenarios) measure(h, run, WARMUP, 0);

  // Interleave rounds so machine noise hits every scenario alike; report medians.
  const samples: Record<string, number[]> = { noop: [], passthrough: [], tagged: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, h, run] of scenarios) samples[name].push(measure(h, run, ITER, WARMUP + r * ITER));
  }
  const ns = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<string, number>;

  // Memory: a fresh filter VM, tagged path (allocates most), before and after 100,000 requests.
  const memHost = await host(FILTER);
  const memRun = taggedPath(memHost);
  const memAtLoad = memHost.getMemorySize();
  for (let i = 0; i < 1_000; i++) memRun(memHost, i);
  const memAfterWarmup = memHost.getMemorySize();
  for (let i = 0; i < MEMORY_REQUESTS; i++) memRun(memHost, 1_000 + i);
  const memAfter = memHost.getMemorySize();
  const passMemBefore = passHost.getMemorySize();

  const wasmBytes = statSync(FILTER).size;
  const noopBytes = statSync(NOOP).size;
  const ratioPass = ns.passthrough / ns.noop;
  const ratioTag = ns.tagged / ns.noop;
  const failed = [noopHost, passHost, tagHost, memHost].some((h) => h.failed);

  const result = {
    date: new Date().toISOString(),
    node: process.version,
    iterationsPerRound: ITER,
    rounds: ROUNDS,
    nsPerRequest: { noop: Math.round(ns.noop), passthrough: Math.round(ns.passthrough), tagged: Math.round(ns.tagged) },
    samplesNs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])),
    ratios: { passthroughToNoop: +ratioPass.toFixed(2), taggedToNoop: +ratioTag.toFixed(2) },
    wasmBytes: { filter: wasmBytes, noop: noopBytes },
    memoryBytes: {
      atLoad: memAtLoad,
      after1kWarmup: memAfterWarmup,
      after100kTagged: memAfter,
      passthroughHostAfterBench: passMemBefore,
      flat: memAfter === memAfterWarmup,
    },
    targets: {
      passthroughRatio: { target: 2, ok: ratioPass <= 2 },
      taggedRatio: { target: 4, ok: ratioTag <= 4 },
      wasmSize: { targetBytes: 65536, ok: wasmBytes <= 65536 },
      memoryFlat: { ok: memAfter === memAfterWarmup },
    },
    vmFailed: failed,
    notes: "Emulator (test/proxy-wasm-host) on this machine; the ratios compare the same runtime's no-op module in the same run. Log level warn (Istio default).",
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");

  const ok = (b: boolean) => (b ? "ok" : "MISSED");
  const rows = [
    ["noop.wasm, request+response", `${Math.round(ns.noop)} ns/req`, "", ""],
    ["filter, passthrough (169.254.169.254)", `${Math.round(ns.passthrough)} ns/req`, `${ratioPass.toFixed(2)}× noop`, `≤ 2×: ${ok(ratioPass <= 2)}`],
    ["filter, tagged (dispatch + local reply)", `${Math.round(ns.tagged)} ns/req`, `${ratioTag.toFixed(2)}× noop`, `≤ 4×: ${ok(ratioTag <= 4)}`],
    ["release filter.wasm", `${wasmBytes} B`, `${(wasmBytes / 1024).toFixed(1)} KiB`, `≤ 64 KiB: ${ok(wasmBytes <= 65536)}`],
    ["VM memory: load / 1k / 100k tagged", `${memAtLoad} / ${memAfterWarmup} / ${memAfter} B`, "", `flat: ${ok(memAfter === memAfterWarmup)}`],
  ];
  const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c].length)));
  console.log(`filter benchmark — ${ROUNDS} rounds × ${ITER} requests, medians (node ${process.version})`);
  for (const r of rows) console.log(r.map((x, c) => x.padEnd(w[c])).join("  "));
  console.log(`written: ${OUT}`);
  if (failed) {
    console.error("a VM trapped during the benchmark");
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
