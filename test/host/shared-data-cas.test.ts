// contract.md §9: one store per vm_id shared by every VM, one global CAS counter from 1,
// cas 0 unconditional, a stale cas → CasMismatch (8), any cas on a missing key succeeds.
import { beforeAll, describe, expect, it } from "vitest";
import { fixture } from "./support/fixtures.ts";
import { get, last, probeHost, text } from "./support/probe.ts";

describe("shared data with Envoy's CAS rules", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("follows §9 across two VMs", async () => {
    const host = await probeHost((o) => o.withWorkers(2));
    const op = (worker: number, d: Record<string, string>) => host.callOnRequestHeaders(host.initializeHttpContext({ worker }), get(d), true);

    op(0, { "x-test-shared-get": "k" });
    expect(last(host, "shared_get ")).toBe("shared_get 1 -"); // NotFound
    op(0, { "x-test-shared-set": "k=v1@0" });
    expect(last(host, "shared_set ")).toBe("shared_set 0");
    op(1, { "x-test-shared-get": "k" }); // the other VM sees it; first CAS is 1
    expect(last(host, "shared_get ")).toBe("shared_get 0 v1 1");
    op(1, { "x-test-shared-set": "k=v2@7" }); // stale cas
    expect(last(host, "shared_set ")).toBe("shared_set 8");
    op(1, { "x-test-shared-set": "k=v2@1" });
    expect(last(host, "shared_set ")).toBe("shared_set 0");
    op(0, { "x-test-shared-set": "k=v3@0" }); // cas 0: unconditional
    expect(last(host, "shared_set ")).toBe("shared_set 0");
    op(0, { "x-test-shared-set": "other=x@99" }); // missing key: cas ignored
    expect(last(host, "shared_set ")).toBe("shared_set 0");
    op(0, { "x-test-shared-get": "k" });
    expect(last(host, "shared_get ")).toBe("shared_get 0 v3 3");
    expect(host.getSharedData("other")!.cas).toBe(4);
    expect(text(host.getSharedData("k")!.value)).toBe("v3");
  });

  it("is namespaced by vm_id", async () => {
    const host = await probeHost((o) => o.withVmId("a"));
    host.callOnRequestHeaders(host.initializeHttpContext(), get({ "x-test-shared-set": "k=v@0" }), true);
    expect(host.getSharedData("k")).toBeDefined();
    const other = await probeHost((o) => o.withVmId("b"));
    other.callOnRequestHeaders(other.initializeHttpContext(), get({ "x-test-shared-get": "k" }), true);
    expect(last(other, "shared_get ")).toBe("shared_get 1 -");
  });
});
