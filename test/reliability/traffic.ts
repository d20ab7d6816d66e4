// Continuous paired traffic through the e2e sandbox (test request + its mirrored copy, same
// request id), for fault suites that break something mid-traffic, and the checks every such run
// must pass whatever broke: every test-stack call answered, no mirror call on the upstream, a
// mirror answer is either the test call's exact bytes or a refusal/miss.
import { randomUUID } from "node:crypto";
import type { PairResult, Sandbox } from "../../envoy/node-sandbox/sandbox.ts";
import { verdicts } from "./support.ts";

export interface Traffic {
  /** `phase` when the pair started, `endPhase` when it finished: a pair can span a phase change. */
  results: Array<PairResult & { phase: string; endPhase: string }>;
  /** Label the pairs started from now on. */
  phase: string;
  done(phase?: string): number;
  stop(): Promise<void>;
}

export function startTraffic(sb: Sandbox, o: { workers?: number; path?: string; label?: string; mirrorDelayMs?: number[] } = {}): Traffic {
  const results: Traffic["results"] = [];
  let stopped = false;
  const delays = o.mirrorDelayMs ?? [5, 0, 20, -20];
  let i = 0;
  const t: Traffic = {
    results,
    phase: "start",
    done: (phase) => results.filter((r) => phase === undefined || r.phase === phase).length,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
  async function worker(): Promise<void> {
    while (!stopped) {
      const phase = t.phase;
      const rid = `rel-${o.label ?? "t"}-${randomUUID()}`;
      const r = await sb.sendPair(rid, { path: o.path ?? "/api/checkout?calls=items,order", mirrorDelayMs: delays[i++ % delays.length] });
      results.push({ ...r, phase, endPhase: t.phase });
    }
  }
  const workers = Array.from({ length: o.workers ?? 3 }, worker);
  return t;
}

/** Violations of the fault-independent invariants over paired results. */
export function pairViolations(results: Array<PairResult & { phase: string }>): string[] {
  const v: string[] = [];
  for (const r of results) {
    const t = verdicts(r.test.summary);
    if (r.test.status !== 200 || t.length === 0) v.push(`[${r.phase}] ${r.requestId}: test app answered ${r.test.status}`);
    for (const d of t) if (d.status !== 200) v.push(`[${r.phase}] ${r.requestId} test ${d.call}: ${d.status} ${d.cache}`);
    const m = verdicts(r.mirror.summary);
    for (const [k, d] of m.entries()) {
      if (d.call === "metadata") continue;
      if (d.cache === "hit") {
        if (d.body !== t[k]?.body || d.status !== t[k]?.status) v.push(`[${r.phase}] ${r.requestId} mirror ${d.call}: hit with other bytes than the test call`);
      } else if (!((d.status === 503 && d.cache === "unavailable") || (d.status === 504 && d.cache === "miss"))) {
        v.push(`[${r.phase}] ${r.requestId} mirror ${d.call}: ${d.status} ${d.cache} (expected hit, 503 unavailable or 504 miss)`);
      }
    }
  }
  return v;
}

/** Every way the sandbox can see a mirror call reaching the upstream. */
export function mirrorReachedUpstream(sb: Sandbox): string[] {
  const v: string[] = [];
  const up = sb.upstream.stats;
  if ((up.byStack.mirror ?? 0) !== 0) v.push(`upstream saw ${up.byStack.mirror} call(s) tagged mirror`);
  const direct = sb.sidecars.mirror.stats.forwards[sb.upstream.authority] ?? 0;
  if (direct) v.push(`mirror sidecar let ${direct} call(s) through to the upstream`);
  const pass = sb.sidecars.mirror.stats.cacheAnswers.pass ?? 0;
  if (pass) v.push(`the cache forwarded ${pass} mirror call(s) (answered pass)`);
  const failedOpen = sb.sidecars.mirror.counter("mesh_mirror.failed_open");
  if (failedOpen) v.push(`the mirror filter failed open ${failedOpen} time(s)`);
  return v;
}

/** Each upstream call must be explained by a test-sidecar call (cache forward or fail-open). */
export function upstreamExplainedByTestCalls(sb: Sandbox): string[] {
  const v: string[] = [];
  const up = sb.upstream.stats;
  const testRecords = sb.sidecars.test.records.filter((r) => r.authority === sb.upstream.authority);
  const testIds = new Set(testRecords.map((r) => r.requestId));
  for (const req of up.requests) if (!testIds.has(req.requestId)) v.push(`upstream call ${req.method} ${req.path} id ${req.requestId} was not made by the test app`);
  // A cache forward plus a fail-open of the same call (cache died after forwarding) is at most 2.
  const bound = testRecords.reduce((n, r) => n + r.dispatches.length + (r.outcome === "fail-open" ? 1 : 0), 0) + testRecords.filter((r) => r.dispatches.length === 0).length;
  if (up.total > bound) v.push(`upstream got ${up.total} calls; the test stack explains at most ${bound}`);
  return v;
}
