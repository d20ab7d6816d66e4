// CONTRACTS.md "Filter configuration": unknown keys, wrong types or a missing required key →
// on_configure returns false and the filter logs exactly one line at error level naming the key.
import { describe, expect, it } from "vitest";
import { LogLevel, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { CACHE_CLUSTER, options } from "./helpers.ts";

const base = { stack: "test", cache_cluster: CACHE_CLUSTER };

// [what, configuration, the key the error line must name]
const cases: Array<[string, Record<string, unknown> | string, string]> = [
  ["empty configuration", "", "stack"],
  ["not JSON", "{stack: test}", "configuration"],
  ["trailing garbage", JSON.stringify(base) + "x", "configuration"],
  ["not an object", "[1,2]", "configuration"],
  ["duplicate key", `{"stack":"test","stack":"mirror","cache_cluster":"c"}`, "stack"],
  ["missing stack", { cache_cluster: CACHE_CLUSTER }, "stack"],
  ["stack of the wrong value", { ...base, stack: "prod" }, "stack"],
  ["stack of the wrong type", { ...base, stack: 1 }, "stack"],
  ["missing cache_cluster", { stack: "mirror" }, "cache_cluster"],
  ["empty cache_cluster", { ...base, cache_cluster: "" }, "cache_cluster"],
  ["cache_cluster not a string", { ...base, cache_cluster: ["a"] }, "cache_cluster"],
  ["unknown key", { ...base, timeuot_ms: 5 }, "timeuot_ms"],
  ["stack_label empty", { ...base, stack_label: "" }, "stack_label"],
  ["stack_header not a header name", { ...base, stack_header: "x mirror" }, "stack_header"],
  ["stack_header a pseudo-header", { ...base, stack_header: ":path" }, "stack_header"],
  ["stack_header not a string", { ...base, stack_header: true }, "stack_header"],
  ["stack_values not an object", { ...base, stack_values: "true" }, "stack_values"],
  ["stack_values missing mirror", { ...base, stack_values: { test: "false" } }, "stack_values.mirror"],
  ["stack_values unknown key", { ...base, stack_values: { test: "a", mirror: "b", prod: "c" } }, "stack_values.prod"],
  ["stack_values equal", { ...base, stack_values: { test: "x", mirror: "x" } }, "stack_values"],
  ["stack_values with a newline", { ...base, stack_values: { test: "a\r\nx-evil: 1", mirror: "b" } }, "stack_values.test"],
  ["stack_values not strings", { ...base, stack_values: { test: false, mirror: true } }, "stack_values.test"],
  ["request_id_header not a header name", { ...base, request_id_header: "" }, "request_id_header"],
  ["request_id_header same as stack_header", { ...base, request_id_header: "X-Mirror-Stack" }, "request_id_header"],
  ["timeout_ms zero", { ...base, timeout_ms: 0 }, "timeout_ms"],
  ["timeout_ms negative", { ...base, timeout_ms: -5 }, "timeout_ms"],
  ["timeout_ms fractional", { ...base, timeout_ms: 1.5 }, "timeout_ms"],
  ["timeout_ms a string", { ...base, timeout_ms: "5s" }, "timeout_ms"],
  ["timeout_ms huge", { ...base, timeout_ms: 1e12 }, "timeout_ms"],
  ["max_body_bytes negative", { ...base, max_body_bytes: -1 }, "max_body_bytes"],
  ["max_body_bytes null", { ...base, max_body_bytes: null }, "max_body_bytes"],
  ["max_body_bytes beyond a VM's memory", { ...base, max_body_bytes: 4294967296 }, "max_body_bytes"],
  ["passthrough not a list", { ...base, passthrough: "10.0.0.0/8" }, "passthrough"],
  ["passthrough entry not a string", { ...base, passthrough: ["a.b", 7] }, "passthrough[1]"],
  ["passthrough bad CIDR", { ...base, passthrough: ["10.0.0.0/33"] }, "passthrough[0]"],
  ["passthrough bad IPv6 CIDR", { ...base, passthrough: ["fd00::/129"] }, "passthrough[0]"],
  ["passthrough bad host", { ...base, passthrough: ["https://metadata/"] }, "passthrough[0]"],
  ["buffer_bodies a string", { ...base, buffer_bodies: "true" }, "buffer_bodies"],
  ["direction unknown", { ...base, direction: "both" }, "direction"],
];

describe("a bad configuration", () => {
  for (const [what, conf, key] of cases) {
    it(`is refused with one error line naming "${key}": ${what}`, async () => {
      const h = await ProxyWasmHost.create(options(conf));
      expect(h.configured).toBe(false);
      expect(h.failed).toBe(false);
      const errors = h.getLogEntries().filter((e) => e.level >= LogLevel.Error);
      expect(errors).toHaveLength(1);
      expect(errors[0].level).toBe(LogLevel.Error);
      expect(errors[0].message).toContain(`"${key}"`);
      expect(errors[0].message).toContain("Fix: ");
      expect(errors[0].message).not.toContain("\n");
      expect(() => h.initializeHttpContext()).toThrow(/not configured/);
    });
  }

  it("is accepted when every key is valid", async () => {
    const h = await ProxyWasmHost.create(options({
      stack: "mirror", stack_label: "stack", cache_cluster: CACHE_CLUSTER, stack_header: "X-Azar-Mirror",
      stack_values: { test: "false", mirror: "true" }, request_id_header: "x-request-id", timeout_ms: 1,
      max_body_bytes: 0, passthrough: ["10.0.0.0/8", "fd00::/8", "vault", "1.2.3.4", "[::1]:80"], buffer_bodies: true,
      direction: "outbound",
    }));
    expect(h.configured).toBe(true);
    expect(h.getLogs(LogLevel.Error)).toEqual([]);
  });

  it("is not needed for cache_cluster on the inbound side", async () => {
    const h = await ProxyWasmHost.create(options({ stack: "mirror", direction: "inbound" }));
    expect(h.configured).toBe(true);
  });

  it("names the key in a second root context without disturbing the first", async () => {
    const h = await ProxyWasmHost.create(options(base));
    const bad = h.addRootContext({ configuration: { ...base, buffer_bodies: 1 } });
    expect(bad.configured).toBe(false);
    expect(h.getLogs(LogLevel.Error).join("\n")).toContain("\"buffer_bodies\"");
    const s = h.initializeHttpContext();
    h.callOnRequestHeaders(s, [[":method", "GET"], [":path", "/"], [":authority", "a"], ["x-request-id", "r"]], true);
    expect(h.getPendingHttpCalls()).toHaveLength(1);
  });
});
