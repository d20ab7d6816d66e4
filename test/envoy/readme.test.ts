// The root README's deployment section (<!-- envoy:start --> … <!-- envoy:end -->): where its
// commands overlap with what verify.sh, package.json, scripts/package-oci.mjs and the overlays
// run or produce, they must be the same commands, paths, names and versions.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kustomizeBuild, readmeCommands, readText, ROOT, verifyCommands, type Obj } from "./helpers.ts";

const readme = readText(join(ROOT, "README.md"));
const region = (() => {
  const m = /<!-- envoy:start -->([\s\S]*?)<!-- envoy:end -->/.exec(readme);
  if (!m) throw new Error("README.md has no envoy region");
  return m[1];
})();
const commands = readmeCommands(region);
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const sandboxCommands = new Set(verifyCommands(readText(join(ROOT, "envoy", "sandbox", "verify.sh"))));
const sandboxReadme = readText(join(ROOT, "envoy", "sandbox", "README.md"));

describe("README deployment section", () => {
  it("walks through sandbox, packaging, Istio install, rollback, fail strategy, bodies, kube2iam/IMDS", () => {
    for (const h of ["### Local Envoy sandbox", "### Packaging", "### Istio install", "### Rollback", "### Fail strategy", "request bodies", "kube2iam"]) {
      expect(region, h).toContain(h);
    }
    expect(commands.length).toBeGreaterThan(10);
  });

  it("the sandbox entry point is verify.sh, run from envoy/sandbox", () => {
    expect(commands).toContain("cd envoy/sandbox && ./verify.sh");
    expect(existsSync(join(ROOT, "envoy", "sandbox", "verify.sh"))).toBe(true);
  });

  it("every sandbox command shown is one verify.sh runs (and the sandbox README documents)", () => {
    const shown = commands.filter((c) => /^(docker compose|curl|npm --prefix)\b/.test(c));
    expect(shown.length).toBeGreaterThan(5);
    for (const c of shown) {
      expect(sandboxCommands.has(c), `verify.sh does not run: ${c}`).toBe(true);
      expect(sandboxReadme, c).toContain(c);
    }
    // ...in verify.sh's order
    const order = [...sandboxCommands];
    const idx = shown.filter((c) => !/down --volumes/.test(c)).map((c) => order.indexOf(c));
    expect(idx).toEqual([...idx].sort((a, b) => a - b));
  });

  it("every `npm run X` is a package.json script; `npm run package` is the packaging script", () => {
    for (const c of commands) {
      for (const m of c.matchAll(/npm (?:--prefix \S+ )?run (\S+)/g)) expect(pkg.scripts, m[1]).toHaveProperty(m[1]);
    }
    expect(commands).toContain("npm run package");
    expect(pkg.scripts.package).toBe("npm run build && node scripts/package-oci.mjs");
  });

  it("the push command pushes the layout, tag and repository npm run package writes", () => {
    const DEFAULT_REPOSITORY = /export const DEFAULT_REPOSITORY = "([^"]+)"/.exec(readText(join(ROOT, "scripts", "package-oci.mjs")))![1];
    const push = commands.find((c) => c.startsWith("skopeo copy"))!;
    expect(push).toBe(`skopeo copy --preserve-digests oci:dist/oci:${pkg.version} docker://${DEFAULT_REPOSITORY}:${pkg.version}`);
    expect(region).toContain(`oras cp --from-oci-layout dist/oci:${pkg.version} ${DEFAULT_REPOSITORY}:${pkg.version}`);
    expect(region).toContain(`url: oci://${DEFAULT_REPOSITORY}:${pkg.version}`);
    // the script prints the same command when run from the repository root with the default --out
    const cwd = mkdtempSync(join(tmpdir(), "readme-push-"));
    try {
      writeFileSync(join(cwd, "plugin.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
      const r = spawnSync(process.execPath, [join(ROOT, "scripts", "package-oci.mjs"), "--wasm", "plugin.wasm", "--out", "dist"], { cwd, encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`push: ${push}\n`);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("the image built and pushed is the one the wasmplugin overlay deploys", () => {
    const objs = kustomizeBuild(join(ROOT, "envoy", "istio", "overlays", "wasmplugin"));
    const image = objs.find((o: Obj) => o.kind === "Deployment" && o.metadata.name === "mirror-cache")!.spec.template.spec.containers[0].image;
    expect(commands).toContain(`docker build -t ${image} .`);
    expect(commands).toContain(`docker push ${image}`);
    expect(image.endsWith(`:${pkg.version}`)).toBe(true);
  });

  it("kubectl -k paths are overlays; -n namespaces, resource names and kinds exist in what they render", () => {
    const kubectl = commands.filter((c) => c.startsWith("kubectl"));
    expect(kubectl.length).toBeGreaterThanOrEqual(5);
    const rendered: Obj[] = [];
    for (const c of kubectl) {
      const k = / -k (\S+)/.exec(c);
      if (k) {
        expect(existsSync(join(ROOT, k[1], "kustomization.yaml")), k[1]).toBe(true);
        rendered.push(...kustomizeBuild(join(ROOT, k[1])));
      }
    }
    expect(commands).toContain("kubectl apply -k envoy/istio/overlays/wasmplugin");
    expect(commands).toContain("kubectl delete -k envoy/istio/overlays/wasmplugin");
    for (const c of kubectl) {
      const ns = / -n (\S+)/.exec(c)?.[1];
      const res = /(?:rollout status|delete) (deployment|virtualservice)[/ ](\S+)/.exec(c);
      if (ns) expect(rendered.some((o) => o.metadata.namespace === ns), `namespace ${ns}`).toBe(true);
      if (res) {
        const [kind, name] = [res[1], res[2]];
        if (kind === "virtualservice" || name === "mirror-cache") {
          expect(rendered.some((o) => o.kind.toLowerCase() === kind && o.metadata.name === name && o.metadata.namespace === ns), c).toBe(true);
        }
      }
    }
  });

  it("`kubectl apply -f dist/wasmplugin.yaml` applies the file npm run package writes", () => {
    expect(commands).toContain("kubectl apply -f dist/wasmplugin.yaml");
    expect(readText(join(ROOT, "scripts", "package-oci.mjs"))).toContain('join(args.out, "wasmplugin.yaml")');
  });

  it("the stated versions and fail strategies match the manifests", () => {
    const compose = readText(join(ROOT, "envoy", "sandbox", "docker-compose.yaml"));
    const tag = /image: (envoyproxy\/envoy:v[\d.]+)/.exec(compose)![1];
    expect(region).toContain(tag);
    const base = (f: string) => readText(join(ROOT, "envoy", "istio", "base", f));
    expect(base("wasmplugin/wasmplugin-test.yaml")).toContain("failStrategy: FAIL_OPEN");
    expect(base("wasmplugin/wasmplugin-mirror.yaml")).toContain("failStrategy: FAIL_CLOSE");
    expect(base("inbound/wasmplugin-mirror-inbound.yaml")).toContain("failStrategy: FAIL_OPEN");
    expect(region).toMatch(/test stack, outbound \| `FAIL_OPEN`/);
    expect(region).toMatch(/mirror stack, outbound \| `FAIL_CLOSE`/);
    expect(region).toMatch(/mirror stack, inbound \| `FAIL_OPEN`/);
  });
});
