// contract.md §6: NUL-separated paths, Struct traversal of xds.node.metadata, typed encodings,
// dotted names NotFound, legacy `node` only on request, plugin_* names, filter state.
import { beforeAll, describe, expect, it } from "vitest";
import { encodePairs } from "../proxy-wasm-host/index.ts";
import { fixture } from "./support/fixtures.ts";
import { get, last, probeHost } from "./support/probe.ts";

const hex = (s: string | Uint8Array) => Buffer.from(s).toString("hex");
const f64 = (n: number) => { const b = Buffer.alloc(8); b.writeDoubleLE(n); return b.toString("hex"); };

describe("properties", () => {
  beforeAll(() => fixture("probe"), 300_000);

  async function prop(path: string, configure = (o: any) => o): Promise<string> {
    const host = await probeHost((o) => configure(o.withPluginName("shop.mesh-mirror").withNodeMetadata({ LABELS: { app: "api", stack: "mirror" }, WEIGHT: 2.5, NAMESPACE: "shop" })));
    host.callOnRequestHeaders(host.initializeHttpContext(), get({ "x-test-property": path }), true);
    return last(host, "property ").slice("property ".length);
  }

  it("reads a Struct string by NUL-joined path", async () => {
    expect(await prop("xds|node|metadata|LABELS|app")).toBe(`0:${hex("api")}`);
  });

  it("serves a Struct map as pairs and a Struct number as an 8-byte double", async () => {
    expect(await prop("xds|node|metadata|LABELS")).toBe(`0:${hex(encodePairs([["app", "api"], ["stack", "mirror"]]))}`);
    expect(await prop("xds|node|metadata|WEIGHT")).toBe(`0:${f64(2.5)}`);
  });

  it("a dotted name is one token: NotFound", async () => {
    expect(await prop("xds.node.metadata")).toBe("1:");
    expect(await prop("request.path")).toBe("1:");
  });

  it("top-level node is NotFound on current Envoy; in legacy mode node works and xds does not", async () => {
    expect(await prop("node|metadata|LABELS|app")).toBe("1:");
    expect(await prop("node|metadata|LABELS|app", (o) => o.withLegacyNodeProperties(true))).toBe(`0:${hex("api")}`);
    expect(await prop("xds|node|metadata|LABELS|app", (o) => o.withLegacyNodeProperties(true))).toBe("1:");
  });

  it("plugin_name, request attributes from the stream, raw withProperty values", async () => {
    expect(await prop("plugin_name")).toBe(`0:${hex("shop.mesh-mirror")}`);
    expect(await prop("request|path")).toBe(`0:${hex("/a")}`);
    expect(await prop("request|method")).toBe(`0:${hex("GET")}`);
    expect(await prop("destination|address", (o) => o.withProperty(["destination", "address"], "169.254.169.254:80"))).toBe(`0:${hex("169.254.169.254:80")}`);
    expect(await prop("destination|port", (o) => o.withProperty(["destination", "port"], 80))).toBe("0:5000000000000000");
  });

  it("set_property writes the stream's filter state, readable by its first segment", async () => {
    const host = await probeHost();
    host.callOnRequestHeaders(host.initializeHttpContext(), get({ "x-test-set-property": "mirror_tag=yes", "x-test-property": "mirror_tag" }), true);
    expect(last(host, "set_property ")).toBe("set_property 0");
    expect(last(host, "property ")).toBe(`property 0:${hex("yes")}`);
  });
});
