// The flow `npm run sandbox` runs (healthy pairs with Istio-like timing, a mirror-only request,
// then the cache stopped) holds every invariant its summary checks.
import { describe, expect, it } from "vitest";
import { runDefault } from "../../envoy/node-sandbox/run.ts";

describe("npm run sandbox's script", () => {
  it("holds every invariant (summary reports none broken)", async () => {
    const { output, ok } = await runDefault({ pairs: 8 });
    expect(output).toContain("invariants: all hold");
    expect(ok).toBe(true);
  });
});
