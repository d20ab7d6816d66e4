// The service's Dockerfile and .dockerignore, checked statically (no Docker engine here): stages,
// base image, production-only install, non-root USER, EXPOSE 8080, HEALTHCHECK on /healthz, the
// CMD, that every COPY source exists and survives .dockerignore, and that everything the service
// imports at run time is in what the image installs and copies.
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { listFiles, readText, ROOT } from "./helpers.ts";

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions (continuations joined, comments dropped), each with its stage index. */
function parseDockerfile(text: string): { instructions: Instruction[]; stages: { base: string; name?: string }[] } {
  const logical: string[] = [];
  let cur = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (cur === "" && /^\s*#/.test(line)) continue;
    if (line.endsWith("\\")) {
      cur += line.slice(0, -1) + " ";
      continue;
    }
    cur += line;
    if (cur.trim()) logical.push(cur.trim());
    cur = "";
  }
  const instructions: Instruction[] = [];
  const stages: { base: string; name?: string }[] = [];
  for (const l of logical) {
    const m = /^(\w+)\s+(.*)$/s.exec(l);
    if (!m) throw new Error(`bad Dockerfile line: ${l}`);
    const op = m[1].toUpperCase();
    if (op === "FROM") {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(m[2].trim())!;
      stages.push({ base: f[1], name: f[2] });
    }
    instructions.push({ op, args: m[2].trim(), stage: stages.length - 1 });
  }
  return { instructions, stages };
}

/** .dockerignore semantics for the patterns used here: last match wins, `!` re-includes, parents count. */
function dockerIgnored(patterns: string[], path: string): boolean {
  const toRe = (p: string) =>
    new RegExp(
      "^" +
        p
          .replace(/\/$/, "")
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replace(/\*\*\//g, "(?:.*/)?")
          .replace(/\*\*/g, ".*")
          .replace(/\*/g, "[^/]*")
          .replace(/\?/g, "[^/]") +
        "$",
    );
  const parts = path.split("/");
  let ignored = false;
  for (const raw of patterns) {
    const neg = raw.startsWith("!");
    const re = toRe(neg ? raw.slice(1) : raw);
    for (let i = 1; i <= parts.length; i++) {
      if (re.test(parts.slice(0, i).join("/"))) {
        ignored = !neg;
        break;
      }
    }
  }
  return ignored;
}

const dockerfile = parseDockerfile(readText(join(ROOT, "Dockerfile")));
const ignore = readText(join(ROOT, ".dockerignore"))
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));
const last = dockerfile.stages.length - 1;
const finalStage = dockerfile.instructions.filter((i) => i.stage === last);

describe("Dockerfile (mirror-cache image)", () => {
  it("is multi-stage on node:20-bookworm-slim, stages named", () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const s of dockerfile.stages) {
      expect(s.base).toMatch(/^node:20(\.\d+)*-bookworm-slim(@sha256:[a-f0-9]{64})?$/);
      expect(s.name).toBeTruthy();
    }
  });

  it("installs production dependencies only, from the lockfile", () => {
    const runs = dockerfile.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(runs.some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm (install|i)\b/.test(r))).toBe(false);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(pkg.dependencies.tsx, "tsx runs the service: a production dependency").toBeDefined();
  });

  it("the final stage runs as a non-root user, numeric so runAsNonRoot can check it", () => {
    const users = finalStage.filter((i) => i.op === "USER").map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.split(":")[0];
    expect(user).toMatch(/^\d+$/);
    expect(Number(user)).toBeGreaterThan(0);
    // the Deployment runs as the same uid
    const deploy = readText(join(ROOT, "envoy", "istio", "base", "mirror-cache", "deployment.yaml"));
    expect(deploy).toContain(`runAsUser: ${user}`);
  });

  it("EXPOSE 8080 and PORT=8080", () => {
    expect(finalStage.filter((i) => i.op === "EXPOSE").map((i) => i.args)).toContain("8080");
    expect(finalStage.some((i) => i.op === "ENV" && /\bPORT=8080\b/.test(i.args))).toBe(true);
  });

  it("the service's malloc asks for huge pages (GLIBC_TUNABLES), as `npm start` runs it too", async () => {
    const { hugePagesStatus, mallocHugetlb } = await import("../../service/huge-pages.ts");
    const env = finalStage.filter((i) => i.op === "ENV").map((i) => i.args).join(" ");
    const tunables = /\bGLIBC_TUNABLES=(\S+)/.exec(env)?.[1];
    expect(mallocHugetlb(tunables)).toBe("1");
    // bookworm's glibc (2.36) knows the tunable (2.35+); the node's THP mode decides the rest
    expect(hugePagesStatus({ tunables, thpMode: "madvise", glibc: true }).on).toBe(true);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(pkg.scripts.start).toMatch(/\bGLIBC_TUNABLES=glibc\.malloc\.hugetlb=1 tsx service\/server\.ts\b/);
  });

  it("HEALTHCHECK probes /healthz with node (no curl in the slim image)", () => {
    const hc = finalStage.filter((i) => i.op === "HEALTHCHECK");
    expect(hc.length).toBe(1);
    expect(hc[0].args).toMatch(/CMD \["node"/);
    expect(hc[0].args).toContain("/healthz");
  });

  it("CMD starts the service with tsx, exec form, no npm in between (signals reach node)", () => {
    const cmd = finalStage.filter((i) => i.op === "CMD").at(-1)!;
    expect(JSON.parse(cmd.args)).toEqual(["node", "--import", "tsx", "service/server.ts"]);
    expect(finalStage.some((i) => i.op === "ENTRYPOINT")).toBe(false);
  });

  it("every COPY source exists and is not excluded by .dockerignore", () => {
    const copies = dockerfile.instructions.filter((i) => i.op === "COPY" && !/--from=/.test(i.args));
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      const words = c.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      for (const src of words.slice(0, -1)) {
        expect(existsSync(join(ROOT, src)), src).toBe(true);
        expect(dockerIgnored(ignore, src.replace(/\/$/, "")), `${src} is excluded by .dockerignore`).toBe(false);
      }
    }
    const fromDeps = dockerfile.instructions.filter((i) => i.op === "COPY" && /--from=(\S+)/.test(i.args));
    for (const c of fromDeps) {
      const stage = /--from=(\S+)/.exec(c.args)![1];
      expect(dockerfile.stages.map((s) => s.name)).toContain(stage);
    }
  });

  it(".dockerignore keeps the build context small: no node_modules, build, dist, tests, .git", () => {
    for (const p of ["node_modules", "build/filter.wasm", "dist/oci", "test/envoy/helpers.ts", ".git", "filter/main.ts", "envoy/sandbox/verify.sh"]) {
      expect(dockerIgnored(ignore, p), p).toBe(true);
    }
    for (const p of ["package.json", "package-lock.json", "tsconfig.json", "service/server.ts"]) {
      expect(dockerIgnored(ignore, p), p).toBe(false);
    }
  });

  it("everything the service imports at run time is installed (dependencies) or copied (service/)", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const deps = new Set(Object.keys(pkg.dependencies ?? {}));
    const builtins = new Set(builtinModules);
    const files = existsSync(join(ROOT, "service")) ? listFiles(join(ROOT, "service"), /\.ts$/).filter((f) => !f.endsWith(".test.ts")) : [];
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const text = readText(f);
      // value imports only: `import type` is erased
      for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm)) {
        const spec = m[1] ?? m[2] ?? m[3];
        const where = `${relative(ROOT, f)}: ${spec}`;
        if (spec.startsWith(".")) {
          const target = resolve(dirname(f), spec);
          expect(relative(join(ROOT, "service"), target).startsWith(".."), `${where} leaves service/ (not in the image)`).toBe(false);
          expect(dockerIgnored(ignore, relative(ROOT, target)), `${where} is excluded by .dockerignore`).toBe(false);
          continue;
        }
        const name = spec.startsWith("node:") ? spec : spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
        if (name.startsWith("node:") || builtins.has(name)) continue;
        expect(deps.has(name), `${where}: not in package.json dependencies (npm ci --omit=dev skips devDependencies)`).toBe(true);
      }
    }
  });
});
