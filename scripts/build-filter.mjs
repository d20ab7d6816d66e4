#!/usr/bin/env node
// Builds the release proxy-wasm modules Envoy loads:
//   filter/main.ts → build/filter.wasm   (the mesh-mirror filter)
//   filter/noop.ts → build/noop.wasm     (same runtime, every callback Continue: benchmark baseline)
// asc (asconfig.json, target "release") → binaryen's wasm-opt -O3 → ../shared/tools/check-wasm-imports.mjs.
// Usage: node scripts/build-filter.mjs [--target debug]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const asc = join(dirname(require.resolve("assemblyscript/package.json")), "bin", "asc.js");
const wasmOpt = join(dirname(require.resolve("binaryen/package.json")), "bin", "wasm-opt");
const checker = join(repo, "..", "shared", "tools", "check-wasm-imports.mjs");
const target = process.argv.includes("--target") ? process.argv[process.argv.indexOf("--target") + 1] : "release";
// The features asc emits by default; wasm-opt must be told, and must not add others
// (Envoy's V8 and older runtimes would refuse e.g. GC or SIMD).
const FEATURES = [
  "--enable-bulk-memory", "--enable-bulk-memory-opt", "--enable-nontrapping-float-to-int",
  "--enable-sign-ext", "--enable-mutable-globals",
];

const MODULES = [
  { entry: "filter/main.ts", out: "build/filter.wasm" },
  { entry: "filter/noop.ts", out: "build/noop.wasm" },
];
const SIZE_BUDGET = 64 * 1024; // release filter.wasm target

function run(cmd, args) {
  const r = spawnSync(process.execPath, [cmd, ...args], { cwd: repo, stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`build-filter: ${relative(repo, cmd)} ${args.join(" ")} failed (exit ${r.status})`);
    process.exit(1);
  }
}

mkdirSync(join(repo, "build"), { recursive: true });
for (const m of MODULES) {
  // Write next to the target and rename: suites running meanwhile never read a half-written module.
  const tmp = m.out.replace(/\.wasm$/, ".tmp.wasm");
  if (target === "release") {
    const raw = m.out.replace(/\.wasm$/, ".asc.wasm");
    run(asc, [m.entry, "--config", "asconfig.json", "--target", target, "-o", raw]);
    run(wasmOpt, [...FEATURES, "-O3", raw, "-o", tmp]);
    rmSync(join(repo, raw));
  } else {
    run(asc, [m.entry, "--config", "asconfig.json", "--target", target, "-o", tmp]);
  }
  renameSync(join(repo, tmp), join(repo, m.out));
}
if (!existsSync(checker)) {
  console.error(`build-filter: ${checker} not found (the shared/ checkout must sit next to the repo)`);
  process.exit(1);
}
run(checker, MODULES.map((m) => m.out));
for (const m of MODULES) {
  const size = statSync(join(repo, m.out)).size;
  console.log(`${m.out}: ${size} bytes (${(size / 1024).toFixed(1)} KiB)`);
}
const filterSize = statSync(join(repo, MODULES[0].out)).size;
if (target === "release" && filterSize > SIZE_BUDGET) {
  console.error(`build-filter: ${MODULES[0].out} is ${filterSize} bytes, over the ${SIZE_BUDGET}-byte budget`);
  process.exit(1);
}
