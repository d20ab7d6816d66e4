// Shared helpers of the e2e suites: each suite starts its own sandbox (real processes and servers
// on 127.0.0.1: upstream, metadata stand-in, the mirror-cache service, two Node sidecars running
// build/filter.wasm in the proxy-wasm host emulator, two apps) through startSandbox().
import { randomUUID } from "node:crypto";
import type { AppSummary, CallName } from "../../envoy/node-sandbox/app.ts";
import type { InboundResult } from "../../envoy/node-sandbox/sandbox.ts";

export { startSandbox, runSteps, comparable, bodiesMatch, summarize } from "../../envoy/node-sandbox/sandbox.ts";
export type { Sandbox, Step, StepResult } from "../../envoy/node-sandbox/sandbox.ts";

/** A fresh request id (the pairing key), unique per run. */
export function newRequestId(label: string): string {
  return `e2e-${label}-${randomUUID()}`;
}

/** The app's answer; fails the test with the raw answer when it is not a summary. */
export function summaryOf(r: InboundResult): AppSummary {
  if (r.status !== 200 || !r.summary) throw new Error(`app answered ${r.status}: ${r.raw.slice(0, 500)}`);
  return r.summary;
}

/** One downstream call of an app's answer: status, body and the `x-mirror-cache` it saw. */
export function call(r: InboundResult, name: CallName, nth = 0): { status: number; body: string; xMirrorCache: string | null } {
  const s = summaryOf(r);
  const idx = s.downstream.map((d, i) => [d, i] as const).filter(([d]) => d.call === name)[nth]?.[1];
  if (idx === undefined) throw new Error(`no ${name} call in ${JSON.stringify(s)}`);
  return { status: s.downstream[idx].status, body: s.downstream[idx].body, xMirrorCache: s.observed[idx].xMirrorCache };
}

export const UPSTREAM_CALLS: CallName[] = ["items", "items2", "order"];
