// `npm run sandbox`: the whole flow on 127.0.0.1 without Docker (see README.md here).
// Starts everything, sends a scripted series of inbound requests to the test app and their
// mirrored copies to the mirror app, prints a summary, tears down, and exits non-zero when an
// invariant of DESIGN.md is broken.
//
//   npm run sandbox                 # default script
//   npm run sandbox -- --pairs 40 --concurrency 8 --verbose
import { relative } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { formatSummary, runSteps, startSandbox, summarize, type Sandbox, type Step, type StepResult } from "./sandbox.ts";

export { startSandbox, runSteps, summarize, formatSummary } from "./sandbox.ts";

/** The scripted series: healthy pairs with Istio-like timing (the mirror copy a little after the
 * test request, sometimes at once, sometimes even before it), one mirrored request whose test
 * request never happened, then the cache stopped and two more pairs. */
export function defaultScript(runId: string, pairs = 12): { steps: Step[]; cacheDown: Step[] } {
  const delays = [5, 0, 25, -40];
  const steps: Step[] = [];
  for (let i = 0; i < pairs; i++) {
    steps.push({
      kind: "pair",
      phase: "healthy",
      requestId: `${runId}-${String(i).padStart(3, "0")}`,
      path: `/api/checkout?user=${i}`,
      mirrorDelayMs: delays[i % delays.length],
    });
  }
  steps.push({ kind: "mirror-only", phase: "orphan", requestId: `${runId}-orphan`, path: "/api/checkout?calls=items,metadata" });
  const cacheDown: Step[] = [0, 1].map((i) => ({
    kind: "pair" as const,
    phase: "cache-down",
    requestId: `${runId}-down-${i}`,
    path: `/api/checkout?user=down${i}`,
  }));
  return { steps, cacheDown };
}

export async function runDefault(opts: { pairs?: number; concurrency?: number; verbose?: boolean } = {}): Promise<{
  output: string;
  ok: boolean;
}> {
  const runId = `sbx-${Date.now().toString(36)}`;
  let sandbox: Sandbox | undefined;
  const t0 = Date.now();
  try {
    sandbox = await startSandbox({ log: opts.verbose ? (l) => console.error(l) : undefined });
    const { steps, cacheDown } = defaultScript(runId, opts.pairs);
    const results: StepResult[] = await runSteps(sandbox, steps, opts.concurrency ?? 4);
    await sandbox.cache.stop();
    results.push(...(await runSteps(sandbox, cacheDown, 2)));
    const summary = summarize(sandbox, results, { cacheDownPhases: ["cache-down"] });
    const phases = new Map<string, number>();
    for (const r of results) phases.set(r.phase, (phases.get(r.phase) ?? 0) + 1);
    const header = [
      `mesh-mirror node sandbox — all on 127.0.0.1: the real filter (${relative(process.cwd(), sandbox.wasmPath) || sandbox.wasmPath}) in the proxy-wasm emulator, the real mirror-cache`,
      `upstream ${sandbox.upstream.authority}, metadata stand-in ${sandbox.metadata.address} (seen as 169.254.169.254:80), ` +
        `mirror-cache ${sandbox.cache.address}, test sidecar ${sandbox.sidecars.test.address}, mirror sidecar ${sandbox.sidecars.mirror.address}` +
        (sandbox.sidecars.mirrorInbound ? ` (inbound ${sandbox.sidecars.mirrorInbound.address})` : ""),
      `script: ${[...phases].map(([p, n]) => `${p} ×${n}`).join(", ")} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      "",
    ].join("\n");
    return { output: header + formatSummary(summary), ok: summary.violations.length === 0 };
  } finally {
    await sandbox?.stop();
  }
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({
    options: {
      pairs: { type: "string" },
      concurrency: { type: "string" },
      verbose: { type: "boolean", short: "v" },
    },
  });
  runDefault({
    pairs: values.pairs ? Number(values.pairs) : undefined,
    concurrency: values.concurrency ? Number(values.concurrency) : undefined,
    verbose: values.verbose,
  }).then(
    ({ output, ok }) => {
      console.log(output);
      process.exit(ok ? 0 : 1);
    },
    (err) => {
      console.error(`sandbox failed: ${(err as Error).stack ?? err}`);
      process.exit(2);
    },
  );
}
