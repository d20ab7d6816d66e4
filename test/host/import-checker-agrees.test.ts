// The shared checker (../shared/tools/check-wasm-imports.mjs) and the emulator must agree: what
// the checker accepts loads here, what it refuses is refused here too.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { EmulatorOptions, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { fixturePath } from "./support/fixtures.ts";

const CHECKER = join(import.meta.dirname, "..", "..", "..", "shared", "tools", "check-wasm-imports.mjs");

function check(file: string): { ok: boolean; out: string } {
  const r = spawnSync(process.execPath, [CHECKER, file], { encoding: "utf8" });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

async function loads(file: string): Promise<boolean> {
  try {
    await ProxyWasmHost.create(new EmulatorOptions().withWasmFile(file));
    return true;
  } catch {
    return false;
  }
}

describe("check-wasm-imports.mjs and the emulator agree", () => {
  beforeAll(async () => {
    for (const f of ["probe", "bogus-import", "abi01-import", "wrong-signature", "no-abi", "no-malloc"]) await fixturePath(f);
  }, 300_000);

  it("finds the shared checker", () => {
    expect(existsSync(CHECKER)).toBe(true);
  });

  for (const [name, expected] of [
    ["probe", true],
    ["bogus-import", false],
    ["abi01-import", false],
    ["wrong-signature", false],
    ["no-abi", false],
    ["no-malloc", false],
  ] as const) {
    it(`${name}: ${expected ? "accepted" : "refused"} by both`, async () => {
      const file = await fixturePath(name);
      const c = check(file);
      expect(c.ok, c.out).toBe(expected);
      expect(await loads(file)).toBe(expected);
    });
  }
});
