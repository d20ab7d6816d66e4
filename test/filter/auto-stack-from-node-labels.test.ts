// `stack: "auto"`: the stack is the workload's pod label, read in on_configure from
// xds.node.metadata.LABELS (Envoy ≥ 1.33) or node.metadata.LABELS (older proxies).
import { describe, expect, it } from "vitest";
import { LogLevel, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { config, onlyCall, options, request, values } from "./helpers.ts";

async function stackOf(h: ProxyWasmHost): Promise<string[]> {
  const s = h.initializeHttpContext();
  h.callOnRequestHeaders(s, request(), true);
  return values(onlyCall(h).headers, "x-mirror-stack");
}

describe("stack: auto", () => {
  for (const stack of ["test", "mirror"]) {
    it(`reads ${stack} from xds.node.metadata.LABELS`, async () => {
      const h = await ProxyWasmHost.create(options(config("auto")).withNodeMetadata({ LABELS: { app: "api", stack }, NAMESPACE: "shop" }));
      expect(h.configured).toBe(true);
      expect(await stackOf(h)).toEqual([stack]);
    });

    it(`falls back to node.metadata.LABELS on older proxies (${stack})`, async () => {
      const h = await ProxyWasmHost.create(options(config("auto")).withNodeMetadata({ LABELS: { stack } }).withLegacyNodeProperties(true));
      expect(h.configured).toBe(true);
      expect(await stackOf(h)).toEqual([stack]);
    });
  }

  it("reads the label named by stack_label and applies stack_values", async () => {
    const h = await ProxyWasmHost.create(
      options(config("auto", { stack_label: "mesh-mirror/stack", stack_header: "x-azar-mirror", stack_values: { test: "false", mirror: "true" } }))
        .withNodeMetadata({ LABELS: { stack: "test", "mesh-mirror/stack": "mirror" } }),
    );
    expect(h.configured).toBe(true);
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, request(), true);
    expect(values(onlyCall(h).headers, "x-azar-mirror")).toEqual(["true"]);
  });

  it("refuses the configuration when the workload has no such label, naming stack_label", async () => {
    for (const md of [{ LABELS: { app: "api" } }, {}]) {
      const h = await ProxyWasmHost.create(options(config("auto")).withNodeMetadata(md));
      expect(h.configured).toBe(false);
      const errors = h.getLogs(LogLevel.Error);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain("\"stack_label\"");
      expect(errors[0]).toContain("\"stack\"");
    }
  });

  it("refuses a label value other than test or mirror", async () => {
    for (const value of ["prod", "Test", "", "mirror "]) {
      const h = await ProxyWasmHost.create(options(config("auto")).withNodeMetadata({ LABELS: { stack: value } }));
      expect(h.configured, value).toBe(false);
      const errors = h.getLogs(LogLevel.Error);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain("\"stack_label\"");
    }
  });

  it("resolves the label once per VM and root context", async () => {
    const h = await ProxyWasmHost.create(options(config("auto")).withNodeMetadata({ LABELS: { stack: "mirror" } }).withWorkers(2));
    expect(h.configured).toBe(true);
    for (const worker of [0, 1]) {
      const s = h.initializeHttpContext({ worker });
      h.callOnRequestHeaders(s, request(), true);
    }
    expect(h.getPendingHttpCalls().map((c) => values(c.headers, "x-mirror-stack")[0])).toEqual(["mirror", "mirror"]);
  });
});
