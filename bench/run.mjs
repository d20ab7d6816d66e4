#!/usr/bin/env node
// `npm run bench`: every benchmark, one after the other (they share 2 cores, so never in
// parallel). Each writes its figures to bench/results/<name>.json and prints a table.
// Pass names to run a subset: `npm run bench -- filter`.
import { spawnSync } from "node:child_process";

const suites = {
  filter: ["tsx", "bench/filter.ts"],
  service: ["tsx", "bench/service/run.ts"],
};
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const extra = process.argv.slice(2).filter((a) => a.startsWith("-"));
const names = wanted.length ? wanted : Object.keys(suites);

let failed = 0;
for (const name of names) {
  const cmd = suites[name];
  if (!cmd) {
    console.error(`unknown benchmark "${name}"; choose from: ${Object.keys(suites).join(", ")}`);
    process.exit(2);
  }
  console.log(`\n=== bench: ${name} ===`);
  const r = spawnSync("npx", [...cmd, ...extra], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
