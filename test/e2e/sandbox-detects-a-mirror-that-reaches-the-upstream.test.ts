// The invariant checks are not vacuous: a mirror sidecar misconfigured as the test stack (so the
// cache forwards its calls) is reported — its calls reach the upstream and its bodies differ.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newRequestId, runSteps, startSandbox, summarize, type Sandbox, type Step } from "./support.ts";

describe("the sandbox's checks catch a broken mirror", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ filterOverrides: { mirror: { stack: "test" } } });
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it("a mirror sidecar that tags its calls `test` reaches the upstream and is reported", async () => {
    const steps: Step[] = [0, 1].map((i) => ({ kind: "pair", requestId: newRequestId(`broken-${i}`), mirrorDelayMs: 5 }));
    const results = await runSteps(sb, steps, 1);
    const s = summarize(sb, results);
    expect(s.rows[1].upstreamHits).toBeGreaterThan(0);
    expect(s.bodyMismatches).toBe(steps.length);
    expect(s.violations.some((v) => v.includes("mirror call(s) reached the upstream"))).toBe(true);
    expect(s.violations.some((v) => v.includes("test and mirror differ"))).toBe(true);
  });
});
