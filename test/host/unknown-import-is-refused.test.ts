// contract.md §1: Envoy links only its own host functions with their exact signatures, needs an
// ABI marker and an allocator; anything else is a load error, not a runtime surprise.
import { beforeAll, describe, expect, it } from "vitest";
import { EmulatorOptions, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { fixture } from "./support/fixtures.ts";

const load = async (name: string) => ProxyWasmHost.create(new EmulatorOptions().withWasmBytes(await fixture(name)));

describe("loading a module the way Envoy links it", () => {
  beforeAll(async () => {
    for (const f of ["bogus-import", "abi01-import", "wrong-signature", "no-abi", "no-malloc", "probe"]) await fixture(f);
  }, 300_000);

  it("refuses an import Envoy does not register, naming it like Envoy", async () => {
    await expect(load("bogus-import")).rejects.toThrow("Failed to load Wasm module due to a missing import: env.proxy_get_secret");
  });

  it("refuses an ABI-0.1.0-only import in an ABI 0.2.1 module", async () => {
    await expect(load("abi01-import")).rejects.toThrow("missing import: env.proxy_get_configuration");
  });

  it("refuses a known import with the wrong signature", async () => {
    await expect(load("wrong-signature")).rejects.toThrow(/import type mismatch: env\.proxy_log/);
  });

  it("refuses a module without an ABI marker export", async () => {
    await expect(load("no-abi")).rejects.toThrow("Missing or unknown Proxy-Wasm ABI version");
  });

  it("refuses a module without malloc or proxy_on_memory_allocate", async () => {
    await expect(load("no-malloc")).rejects.toThrow("Wasm module is missing malloc function");
  });

  it("loads a module whose imports are all Envoy's", async () => {
    const host = await load("probe");
    expect(host.configured).toBe(true);
    expect(host.abi).toBe("0.2.1");
  });
});
