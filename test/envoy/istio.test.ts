// envoy/istio: every manifest file and every rendered overlay is validated — Istio kinds against
// the CRD JSON schemas in ../shared/istio-crds/schemas (ajv; CEL rules are checked by hand where they
// matter), Kubernetes objects against their required fields, cross-object references (selectors,
// ports, probes, cache_cluster, header conventions), and every filter configuration against the
// filter's own parser (build/filter.wasm in the proxy-wasm host emulator).
//
// Overlays are rendered by a minimal kustomize (test/envoy/helpers.ts: resources, namespace, images,
// JSON 6902 patches with targets); a kustomization using any other field fails the test.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkKubeObject,
  isIstio,
  istioClusters,
  kustomizeBuild,
  listFiles,
  loadYamlDocs,
  podTemplates,
  ROOT,
  runFilterConfig,
  selects,
  validateIstio,
  type Obj,
} from "./helpers.ts";

const ISTIO = join(ROOT, "envoy", "istio");
const OVERLAYS = readdirSync(join(ISTIO, "overlays"))
  .filter((d) => statSync(join(ISTIO, "overlays", d)).isDirectory())
  .sort();
const WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue";
const CONTRACT_PROBE_PATHS = new Set(["/healthz", "/readyz"]); // CONTRACTS.md: the service's own endpoints

/** A filter configuration found in a manifest, with what it applies to. */
interface PluginUse {
  where: string;
  kind: "WasmPlugin" | "EnvoyFilter";
  namespace: string;
  labels: Record<string, string>;
  config: Obj;
  raw: string;
  failure: string; // WasmPlugin failStrategy or Envoy failure_policy
  mode: "CLIENT" | "SERVER";
  allowOnHeadersStopIteration: boolean;
}

function pluginUses(objs: Obj[]): PluginUse[] {
  const out: PluginUse[] = [];
  for (const o of objs) {
    const where = `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`;
    if (o.kind === "WasmPlugin") {
      const modes = (o.spec.match ?? []).map((m: Obj) => m.mode);
      expect(modes.length, `${where}: match.mode is required (default is CLIENT_AND_SERVER)`).toBe(1);
      out.push({
        where,
        kind: "WasmPlugin",
        namespace: o.metadata.namespace,
        labels: o.spec.selector?.matchLabels ?? {},
        config: o.spec.pluginConfig,
        raw: JSON.stringify(o.spec.pluginConfig), // what istiod hands the module
        failure: o.spec.failStrategy,
        mode: modes[0],
        allowOnHeadersStopIteration: false, // WasmPlugin cannot set it
      });
    }
    if (o.kind === "EnvoyFilter") {
      for (const p of o.spec.configPatches) {
        if (p.applyTo !== "EXTENSION_CONFIG") continue;
        const ts = p.patch.value.typed_config;
        const wasm = ts["@type"] === "type.googleapis.com/udpa.type.v1.TypedStruct" ? ts.value : ts;
        const cfg = wasm.config;
        const raw = cfg.configuration.value;
        out.push({
          where,
          kind: "EnvoyFilter",
          namespace: o.metadata.namespace,
          labels: o.spec.workloadSelector?.labels ?? {},
          config: JSON.parse(raw),
          raw,
          failure: cfg.failure_policy,
          mode: p.match?.context === "SIDECAR_INBOUND" ? "SERVER" : "CLIENT",
          allowOnHeadersStopIteration: cfg.allow_on_headers_stop_iteration === true,
        });
      }
    }
  }
  return out;
}

const isFailOpen = (u: PluginUse) => u.failure === "FAIL_OPEN";

describe("envoy/istio manifest files", () => {
  const files = listFiles(ISTIO, /\.ya?ml$/).filter((f) => !/kustomization\.ya?ml$/.test(f));
  const manifests = files.filter((f) => !relative(ISTIO, f).startsWith("overlays"));

  it("every file parses as YAML", () => {
    expect(files.length).toBeGreaterThan(15);
    for (const f of files) expect(() => loadYamlDocs(f), relative(ROOT, f)).not.toThrow();
  });

  it("every Istio object in base validates against its CRD schema", () => {
    let n = 0;
    for (const f of manifests) {
      for (const o of loadYamlDocs(f)) {
        if (!isIstio(o)) continue;
        n++;
        expect(validateIstio(o), `${relative(ROOT, f)} ${o.kind}/${o.metadata?.name}`).toEqual([]);
      }
    }
    expect(n).toBeGreaterThanOrEqual(9);
  });

  it("the schema check is not vacuous: a bad failStrategy, sha256 or missing url is refused", () => {
    const wp = loadYamlDocs(join(ISTIO, "base", "wasmplugin", "wasmplugin-test.yaml"))[0];
    expect(validateIstio({ ...wp, spec: { ...wp.spec, failStrategy: "FAIL_OPENED" } })).not.toEqual([]);
    expect(validateIstio({ ...wp, spec: { ...wp.spec, sha256: "not-a-digest" } })).not.toEqual([]);
    const { url: _url, ...noUrl } = wp.spec;
    expect(validateIstio({ ...wp, spec: noUrl })).not.toEqual([]);
  });
});

for (const overlay of OVERLAYS) {
  describe(`overlay ${overlay} (rendered)`, () => {
    const objs = kustomizeBuild(join(ISTIO, "overlays", overlay));
    const byKind = (k: string) => objs.filter((o) => o.kind === k);
    const uses = pluginUses(objs);
    const cacheService = byKind("Service").find((s) => s.metadata.name === "mirror-cache")!;
    const deployment = byKind("Deployment").find((d) => d.metadata.name === "mirror-cache")!;
    const container = deployment?.spec.template.spec.containers[0];
    const env = Object.fromEntries((container?.env ?? []).map((e: Obj) => [e.name, e.value]));

    it("renders the service, the mesh routing and the filter for both stacks", () => {
      for (const k of ["Namespace", "ServiceAccount", "Deployment", "Service", "DestinationRule", "VirtualService", "ServiceEntry"]) {
        expect(byKind(k).length, k).toBeGreaterThan(0);
      }
      const outbound = uses.filter((u) => u.mode === "CLIENT");
      expect(outbound.map((u) => u.config.stack).sort()).toEqual(["mirror", "test"]);
      const inbound = uses.filter((u) => u.mode === "SERVER");
      expect(inbound.map((u) => [u.config.stack, u.config.direction])).toEqual([["mirror", "inbound"]]);
    });

    it("Istio objects validate against the CRD schemas", () => {
      for (const o of objs.filter(isIstio)) expect(validateIstio(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
    });

    it("Kubernetes objects have their required fields", () => {
      for (const o of objs) expect(checkKubeObject(o), `${o.kind}/${o.metadata?.name}`).toEqual([]);
    });

    it("the Namespace object is the one mirror-cache's objects live in", () => {
      const ns = byKind("Namespace").map((n) => n.metadata.name);
      expect(ns).toEqual([deployment.metadata.namespace]);
      for (const k of ["ServiceAccount", "Service", "Deployment"]) {
        for (const o of byKind(k)) expect(o.metadata.namespace, `${k}/${o.metadata.name}`).toBe(ns[0]);
      }
    });

    it("mirror-cache Deployment: probes on the contract's paths, resources, hardened security context, sidecar", () => {
      const podSpec = deployment.spec.template.spec;
      expect(deployment.spec.template.metadata.labels["sidecar.istio.io/inject"]).toBe("true");
      expect(byKind("ServiceAccount").map((s) => s.metadata.name)).toContain(podSpec.serviceAccountName);
      expect(container.livenessProbe.httpGet.path).toBe("/healthz");
      expect(container.readinessProbe.httpGet.path).toBe("/readyz");
      for (const p of ["livenessProbe", "readinessProbe", "startupProbe"]) {
        if (container[p]?.httpGet) expect(CONTRACT_PROBE_PATHS.has(container[p].httpGet.path), p).toBe(true);
      }
      expect(container.ports).toContainEqual(expect.objectContaining({ name: "http", containerPort: 8080 }));
      expect(env.PORT).toBe("8080");
      expect(container.resources.requests.cpu).toBeDefined();
      expect(container.resources.requests.memory).toBeDefined();
      expect(container.resources.limits.memory).toBeDefined();
      const sc = container.securityContext;
      expect(sc.runAsNonRoot).toBe(true);
      expect(sc.readOnlyRootFilesystem).toBe(true);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.capabilities.drop).toContain("ALL");
      expect(podSpec.securityContext.runAsNonRoot).toBe(true);
      expect(podSpec.securityContext.runAsUser).toBeGreaterThan(0);
      // read-only root fs: tsx needs a writable /tmp
      expect(container.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: "/tmp" }));
      expect(container.image).not.toMatch(/^mesh-mirror\//); // the overlay set a registry image
    });

    it("mirror-cache Deployment: every MIRROR_CACHE_* variable is one the service knows", async () => {
      const { VARIABLES } = await import("../../service/config.ts");
      for (const k of Object.keys(env)) expect(Object.keys(VARIABLES), k).toContain(k);
      // the memory store keeps records per replica: one replica unless the store is shared
      if ((env.MIRROR_CACHE_STORE ?? "memory") === "memory") expect(deployment.spec.replicas ?? 1).toBe(1);
    });

    it("mirror-cache Deployment: MIRROR_CACHE_IDENTITY maps the mirror stack's identity to mirror and the test stack's to test", async () => {
      // Without it a mirror pod can call mirror-cache directly (its filter passes calls to the cache
      // untouched) with the test stack's header value and be forwarded to a real upstream.
      const { loadConfig } = await import("../../service/config.ts");
      const { parseSpiffe, stackForIdentity } = await import("../../service/identity.ts");
      expect(env.MIRROR_CACHE_IDENTITY, "the Deployment must set MIRROR_CACHE_IDENTITY").toBeTruthy();
      const rules = loadConfig(env).identity; // the whole env as the service reads it
      // The stacks: the VirtualService's route (test) and mirror (mirror) Services, in the plugins'
      // namespace; their pods run as service accounts named like the Services (README).
      const route = byKind("VirtualService")[0].spec.http[0];
      const appNs = uses[0].namespace;
      const identity = (host: string) => parseSpiffe(`spiffe://cluster.local/ns/${appNs}/sa/${host.split(".")[0]}`)!;
      expect(stackForIdentity(rules, identity(route.route[0].destination.host)), "test stack").toBe("test");
      expect(stackForIdentity(rules, identity(route.mirror.host)), "mirror stack").toBe("mirror");
      // mirror-cache itself and the API's other workloads map to no stack (the header decides)
      expect(stackForIdentity(rules, parseSpiffe(`spiffe://cluster.local/ns/${deployment.metadata.namespace}/sa/${deployment.spec.template.spec.serviceAccountName}`)!)).toBeUndefined();
    });

    it("Service: port 8080 named http, selects the mirror-cache pods, targets a container port", () => {
      expect(cacheService.spec.ports).toContainEqual(expect.objectContaining({ name: "http", port: 8080 }));
      const pods = podTemplates(objs).filter((p) => p.ns === cacheService.metadata.namespace && selects(cacheService.spec.selector, p.labels));
      expect(pods.length).toBe(1);
      for (const p of cacheService.spec.ports) {
        const targets = pods[0].containers.flatMap((c: Obj) => c.ports ?? []);
        const t = p.targetPort ?? p.port;
        expect(targets.some((cp: Obj) => cp.name === t || cp.containerPort === t), `targetPort ${t}`).toBe(true);
      }
    });

    it("the mirror-cache DestinationRule applies to the Service (mTLS) in its namespace", () => {
      const dr = byKind("DestinationRule").find((d) => d.metadata.name === "mirror-cache")!;
      expect(dr.metadata.namespace).toBe(cacheService.metadata.namespace);
      expect([cacheService.metadata.name, `${cacheService.metadata.name}.${cacheService.metadata.namespace}.svc.cluster.local`]).toContain(dr.spec.host);
      expect(dr.spec.trafficPolicy.tls.mode).toBe("ISTIO_MUTUAL");
    });

    it("no plugin selects the mirror-cache pods (only API pods are tagged)", () => {
      const pod = deployment.spec.template.metadata.labels;
      for (const u of uses) {
        if (u.namespace !== deployment.metadata.namespace) continue;
        expect(selects(u.labels, pod), u.where).toBe(false);
      }
    });

    it("plugins: selectors on the stack label, mode, fail strategy per stack (test open, mirror closed)", () => {
      for (const u of uses) {
        expect(Object.keys(u.labels).length, `${u.where}: needs a selector`).toBeGreaterThan(0);
        if (u.mode === "CLIENT" && u.config.stack === "test") expect(isFailOpen(u), u.where).toBe(true);
        if (u.mode === "CLIENT" && u.config.stack === "mirror") expect(u.failure, u.where).toMatch(/^FAIL_CLOSED?$/);
      }
      const test = uses.find((u) => u.mode === "CLIENT" && u.config.stack === "test")!;
      const mirror = uses.find((u) => u.mode === "CLIENT" && u.config.stack === "mirror")!;
      const inbound = uses.find((u) => u.mode === "SERVER")!;
      expect(Object.keys(test.labels)).toEqual(Object.keys(mirror.labels)); // one stack label key
      expect(test.labels).not.toEqual(mirror.labels);
      expect(inbound.labels).toEqual(mirror.labels);
      expect(new Set(uses.map((u) => u.namespace)).size).toBe(1);
    });

    it("WasmPlugins: oci:// URL (the CEL rule ajv does not run), buffer_bodies false; EnvoyFilters: buffer_bodies with allow_on_headers_stop_iteration", () => {
      for (const o of byKind("WasmPlugin")) expect(o.spec.url, o.metadata.name).toMatch(/^oci:\/\/[a-z0-9.-]+(:\d+)?\/[a-z0-9._/-]+(:[\w.-]+)?(@sha256:[a-f0-9]{64})?$/);
      for (const u of uses) {
        if (u.kind === "WasmPlugin") expect(u.config.buffer_bodies ?? false, u.where).toBe(false);
        if (u.config.buffer_bodies === true) expect(u.allowOnHeadersStopIteration, u.where).toBe(true);
      }
    });

    it("EnvoyFilters: ECDS Wasm config (StringValue, v8, oci module) loaded by name before the router", () => {
      for (const ef of byKind("EnvoyFilter")) {
        const ext = ef.spec.configPatches.filter((p: Obj) => p.applyTo === "EXTENSION_CONFIG");
        const http = ef.spec.configPatches.filter((p: Obj) => p.applyTo === "HTTP_FILTER");
        expect(ext.length).toBe(1);
        expect(http.length).toBe(1);
        const ts = ext[0].patch.value.typed_config;
        expect(ext[0].patch.operation).toBe("ADD");
        expect(ts.type_url).toBe(WASM_TYPE);
        expect(ts.value.config.configuration["@type"]).toBe(STRING_VALUE);
        expect(ts.value.config.vm_config.runtime).toBe("envoy.wasm.runtime.v8");
        expect(ts.value.config.vm_config.code.remote.http_uri.uri).toMatch(/^oci:\/\//);
        const hf = http[0].patch;
        expect(hf.operation).toBe("INSERT_BEFORE");
        expect(http[0].match.listener.filterChain.filter.subFilter.name).toBe("envoy.filters.http.router");
        expect(hf.value.name).toBe(ext[0].patch.value.name);
        expect(hf.value.config_discovery.type_urls).toContain(WASM_TYPE);
        expect(http[0].match.context).toBe(ext[0].match.context);
      }
    });

    it("every cache_cluster is the rendered mirror-cache Service as a sidecar names it", () => {
      const port = cacheService.spec.ports.find((p: Obj) => p.name === "http").port;
      const expected = `outbound|${port}||${cacheService.metadata.name}.${cacheService.metadata.namespace}.svc.cluster.local`;
      for (const u of uses) expect(u.config.cache_cluster, u.where).toBe(expected);
    });

    it("the plugins' header convention and timeouts match the service's environment", () => {
      const [testValue, mirrorValue] = ["test", "mirror"].map((s) =>
        (env.MIRROR_CACHE_STACK_VALUES ?? "test=test,mirror=mirror")
          .split(",")
          .find((kv: string) => kv.startsWith(`${s}=`))!
          .slice(s.length + 1),
      );
      for (const u of uses) {
        expect(u.config.stack_header ?? "x-mirror-stack", u.where).toBe(env.MIRROR_CACHE_STACK_HEADER ?? "x-mirror-stack");
        expect(u.config.stack_values ?? { test: "test", mirror: "mirror" }, u.where).toEqual({ test: testValue, mirror: mirrorValue });
        expect(u.config.request_id_header ?? "x-request-id", u.where).toBe(env.MIRROR_CACHE_REQUEST_ID_HEADER ?? "x-request-id");
      }
      const timeout = (u: PluginUse) => u.config.timeout_ms ?? 5000;
      const n = (k: string, d: number) => Number(env[k] ?? d);
      for (const u of uses.filter((x) => x.mode === "CLIENT")) {
        if (u.config.stack === "mirror") expect(timeout(u), u.where).toBeGreaterThan(n("MIRROR_CACHE_WAIT_MS", 10000));
        if (u.config.stack === "test") {
          expect(timeout(u), u.where).toBeGreaterThan(n("MIRROR_CACHE_CONNECT_TIMEOUT_MS", 2000) + n("MIRROR_CACHE_UPSTREAM_TIMEOUT_MS", 10000));
        }
      }
    });

    it("VirtualService mirrors the API to the mirror stack with mirrorPercentage", () => {
      const vs = byKind("VirtualService");
      expect(vs.length).toBe(1);
      const route = vs[0].spec.http[0];
      expect(route.mirror.host).not.toBe(route.route[0].destination.host);
      expect(route.mirrorPercentage.value).toBeGreaterThan(0);
      expect(route.mirrorPercentage.value).toBeLessThanOrEqual(100);
      expect(vs[0].metadata.namespace).toBe(uses[0].namespace);
    });

    it("external HTTPS API: ServiceEntry port 80 -> 443 with TLS origination in the DestinationRule", () => {
      const se = byKind("ServiceEntry")[0];
      const http = se.spec.ports.find((p: Obj) => p.protocol === "HTTP");
      expect(http.targetPort).toBe(443);
      const dr = byKind("DestinationRule").find((d) => se.spec.hosts.includes(d.spec.host))!;
      const pl = dr.spec.trafficPolicy.portLevelSettings.find((p: Obj) => p.port.number === http.number);
      expect(pl.tls.mode).toBe("SIMPLE");
    });

    it("every filter configuration passes the filter's own parser (build/filter.wasm in the emulator)", async () => {
      const clusters = istioClusters(objs);
      for (const u of uses) {
        const r = await runFilterConfig(u.raw, clusters, { labels: u.labels, allowOnHeadersStopIteration: u.allowOnHeadersStopIteration });
        expect(r.configured, `${u.where}: ${u.raw}\n${r.logs.join("\n")}`).toBe(true);
      }
    });
  });
}

describe("overlays", () => {
  it("wasmplugin, envoyfilter and custom exist; the custom one changes every parameter", () => {
    expect(OVERLAYS).toEqual(expect.arrayContaining(["custom", "envoyfilter", "wasmplugin"]));
    const base = kustomizeBuild(join(ISTIO, "overlays", "wasmplugin"));
    const custom = kustomizeBuild(join(ISTIO, "overlays", "custom"));
    const ns = (objs: Obj[], kind: string) => objs.find((o) => o.kind === kind)!.metadata.namespace;
    expect(ns(custom, "Deployment")).not.toBe(ns(base, "Deployment"));
    expect(ns(custom, "WasmPlugin")).not.toBe(ns(base, "WasmPlugin"));
    const image = (objs: Obj[]) => objs.find((o) => o.kind === "Deployment")!.spec.template.spec.containers[0].image;
    expect(image(custom)).not.toBe(image(base));
    const labels = (objs: Obj[]) => objs.filter((o) => o.kind === "WasmPlugin").map((o) => o.spec.selector.matchLabels);
    expect(labels(custom)).not.toEqual(labels(base));
    const identity = (objs: Obj[]) => objs.find((o) => o.kind === "Deployment")!.spec.template.spec.containers[0].env.find((e: Obj) => e.name === "MIRROR_CACHE_IDENTITY")?.value;
    expect(identity(custom)).not.toBe(identity(base)); // follows the API's namespace
  });

  it("the envoyfilter overlay uses EnvoyFilters instead of (not besides) outbound WasmPlugins", () => {
    const objs = kustomizeBuild(join(ISTIO, "overlays", "envoyfilter"));
    const outboundWasmPlugins = objs.filter((o) => o.kind === "WasmPlugin" && o.spec.match.some((m: Obj) => m.mode !== "SERVER"));
    expect(outboundWasmPlugins).toEqual([]);
    expect(objs.filter((o) => o.kind === "EnvoyFilter").length).toBe(2);
  });

  it("the renderer refuses what it does not implement, and a failing JSON 6902 test op fails the build", () => {
    const dir = mkdtempSync(join(tmpdir(), "kustomize-"));
    try {
      writeFileSync(join(dir, "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n");
      writeFileSync(join(dir, "kustomization.yaml"), "resources: [cm.yaml]\ncommonLabels: {a: b}\n");
      expect(() => kustomizeBuild(dir)).toThrow(/commonLabels.*not supported/);
      writeFileSync(
        join(dir, "kustomization.yaml"),
        "namespace: ns1\nresources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: x}\n  patch: |-\n    - op: test\n      path: /data/a\n      value: c\n",
      );
      expect(() => kustomizeBuild(dir)).toThrow(/test failed at \/data\/a/);
      writeFileSync(
        join(dir, "kustomization.yaml"),
        "namespace: ns1\nresources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: x}\n  patch: |-\n    - op: replace\n      path: /data/a\n      value: c\n",
      );
      expect(kustomizeBuild(dir)).toEqual([{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "ns1" }, data: { a: "c" } }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
