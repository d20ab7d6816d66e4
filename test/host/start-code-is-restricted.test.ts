// contract.md §1.4: while the module's start code runs (wasm start section, _initialize, _start),
// only logging/WASI basics work; anything else traps with restricted_callback and the VM fails.
import { beforeAll, describe, expect, it } from "vitest";
import { EmulatorOptions, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { fixture } from "./support/fixtures.ts";

describe("start code runs under Envoy's restricted-call rule", () => {
  beforeAll(async () => {
    await fixture("start-calls-property");
    await fixture("start-logs", ["--exportStart", "_initialize"]);
  }, 300_000);

  it("a property read from top-level code traps: the VM does not start", async () => {
    const opts = new EmulatorOptions().withWasmBytes(await fixture("start-calls-property"));
    await expect(ProxyWasmHost.create(opts)).rejects.toThrow(/restricted_callback: env\.proxy_get_property/);
  });

  it("logging from _initialize is allowed and happens once per VM", async () => {
    const opts = new EmulatorOptions().withWasmBytes(await fixture("start-logs", ["--exportStart", "_initialize"])).withWorkers(2);
    const host = await ProxyWasmHost.create(opts);
    expect(host.configured).toBe(true);
    expect(host.getLogs().filter((l) => l === "start: hello")).toHaveLength(2);
    expect(host.getLogs().filter((l) => l === "vm_start")).toHaveLength(2);
  });
});
