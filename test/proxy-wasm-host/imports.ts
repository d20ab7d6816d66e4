// The import object Envoy links into a module (contract.md §1.2, envoy-host-functions.json):
// the exact list and signatures, the ABI-dependent subsets, the restricted-call rule for start
// code (§1.4), and Envoy's link errors for anything else.
import { readFileSync } from "node:fs";
import type { ModuleImport } from "./wasm-module.ts";

export type Abi = "0.1.0" | "0.2.0" | "0.2.1";

interface FnSpec {
  name: string;
  params: string[];
  result: string | null;
  abi?: string[];
}

const specUrl = new URL("../../../shared/proxy-wasm/envoy-host-functions.json", import.meta.url);
let specCache: { detail: Record<string, FnSpec[]> } | undefined;
function spec(): Record<string, FnSpec[]> {
  if (!specCache) {
    try {
      specCache = { detail: JSON.parse(readFileSync(specUrl, "utf8")).imports_detail };
    } catch (e) {
      throw new Error(`proxy-wasm emulator: cannot read ${specUrl.pathname} (the shared host-function list): ${(e as Error).message}`);
    }
  }
  return specCache.detail;
}

export interface HostFunctionSpec {
  module: string;
  name: string;
  params: string[];
  results: string[];
}

/** module.name → signature, for the functions Envoy registers for a module of this ABI. */
export function envoyHostFunctions(abi: Abi): Map<string, HostFunctionSpec> {
  const d = spec();
  const out = new Map<string, HostFunctionSpec>();
  const add = (module: string, f: FnSpec): void => {
    if (f.abi && !f.abi.includes(abi)) return;
    out.set(`${module}.${f.name}`, { module, name: f.name, params: f.params, results: f.result ? [f.result] : [] });
  };
  const envGroups = ["env_all_abi_versions", "env_abi_0_2_x_only", "env_misc_always", "env_envoy_specific"];
  if (abi === "0.1.0") envGroups.push("env_abi_0_1_0_only_NOT_available_to_0_2_x_modules");
  for (const g of envGroups) for (const f of d[g] ?? []) add("env", f);
  // The same WASI set is registered under both module names (json notes).
  for (const f of d.wasi_snapshot_preview1 ?? []) {
    add("wasi_snapshot_preview1", f);
    add("wasi_unstable", f);
  }
  return out;
}

/** Envoy's link step (§1.2): unknown import or signature mismatch is fatal, imported non-functions too. */
export function checkLinkable(imports: ModuleImport[], abi: Abi): void {
  const known = envoyHostFunctions(abi);
  for (const imp of imports) {
    const key = `${imp.module}.${imp.name}`;
    if (imp.kind !== "function") {
      throw new Error(`Failed to load Wasm module due to a missing import: ${key} (imported ${imp.kind}; Envoy links functions only)`);
    }
    const f = known.get(key);
    if (!f) throw new Error(`Failed to load Wasm module due to a missing import: ${key}`);
    const t = imp.type!;
    if (t.params.join(",") !== f.params.join(",") || t.results.join(",") !== f.results.join(",")) {
      throw new Error(`Failed to load Wasm module due to import type mismatch: ${key} (${t.params})->(${t.results}) vs Envoy's (${f.params})->(${f.results})`);
    }
  }
}

/**
 * Host calls allowed while `_initialize`/`_start`/`main` run (§1.4); anything else traps with
 * "restricted_callback". proc_exit and sched_yield are not on Envoy's list.
 */
export function allowedDuringStart(module: string, name: string): boolean {
  if (module === "env") return name === "proxy_log" || name === "emscripten_notify_memory_growth";
  return name !== "proc_exit" && name !== "sched_yield";
}

export class HostTrap extends Error {}

type AnyFn = (...args: any[]) => any;

/**
 * Build the import object for exactly the functions the module imports (already checked).
 * `impl` maps bare names to implementations; `isStarting` gates the restricted-call rule.
 * Each gated import gets its own wrapper with the import's exact arity (no rest args, and a
 * call site of its own so V8 can inline the implementation).
 */
export function buildImportObject(
  imports: ModuleImport[],
  impl: Record<string, AnyFn>,
  isStarting: () => boolean,
): WebAssembly.Imports {
  const obj: Record<string, Record<string, AnyFn>> = {};
  for (const imp of imports) {
    const fn = impl[imp.name] ?? (() => 12 /* Unimplemented: a listed function this emulator does not model */);
    const allowed = allowedDuringStart(imp.module, imp.name);
    const key = `${imp.module}.${imp.name}`;
    const wrapped = allowed ? fn : gate(fn, key, isStarting, imp.type?.params.length ?? 12);
    (obj[imp.module] ??= {})[imp.name] = wrapped;
  }
  return obj;
}

const ARG_NAMES = "abcdefghijklmnop";

function gate(fn: AnyFn, key: string, isStarting: () => boolean, arity: number): AnyFn {
  const args = ARG_NAMES.slice(0, Math.min(arity, ARG_NAMES.length)).split("").join(", ");
  // A fresh function per import (not a shared closure): its own feedback, so `fn` stays monomorphic.
  const make = new Function(
    "fn", "isStarting", "HostTrap", "message",
    `return function (${args}) {\n  if (isStarting()) throw new HostTrap(message);\n  return fn(${args});\n};`,
  ) as (fn: AnyFn, isStarting: () => boolean, trap: typeof HostTrap, message: string) => AnyFn;
  return make(fn, isStarting, HostTrap, `restricted_callback: ${key} called from the module's start code`);
}
