// Shared helpers for the envoy/ tests: paths, YAML loading, a minimal kustomize renderer, Istio CRD
// schema validation (ajv), Kubernetes object checks, and the filter's own configuration parser run
// through the proxy-wasm host emulator.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { parseAllDocuments } from "yaml";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SHARED = resolve(ROOT, "..", "shared");
export const SCHEMAS_DIR = join(SHARED, "istio-crds", "schemas");
export const FILTER_WASM = join(ROOT, "build", "filter.wasm");

export type Obj = Record<string, any>;

export function readText(path: string): string {
  return readFileSync(path, "utf8");
}

/** Every document of a YAML file, as plain JS; throws on a YAML error (with the file name). */
export function loadYamlDocs(path: string): Obj[] {
  const docs = parseAllDocuments(readText(path), { prettyErrors: true, merge: true });
  const out: Obj[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${relative(ROOT, path)}: ${d.errors.map((e) => e.message).join("; ")}`);
    const v = d.toJS({ maxAliasCount: 100 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

export function loadYaml(path: string): Obj {
  const docs = loadYamlDocs(path);
  if (docs.length !== 1) throw new Error(`${relative(ROOT, path)}: expected one YAML document, got ${docs.length}`);
  return docs[0];
}

/** Files under `dir` (recursively) whose name matches `re`. */
export function listFiles(dir: string, re: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p, re));
    else if (re.test(name)) out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Minimal kustomize: resources (files and directories), namespace, images, patches (JSON 6902 only,
// with target). Anything else in a kustomization.yaml is an error, so the overlays cannot silently
// use a feature this renderer would get wrong.
// ---------------------------------------------------------------------------------------------

const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "resources", "namespace", "images", "patches"]);
export const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"]);

export function resourceId(o: Obj): string {
  const group = String(o.apiVersion ?? "").includes("/") ? String(o.apiVersion).split("/")[0] : "";
  return `${group}/${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
}

function decodePointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new Error(`JSON pointer must start with "/": ${path}`);
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** RFC 6902 add / replace / remove / test on `doc` (in place). */
export function applyJson6902(doc: Obj, ops: Obj[], where = "patch"): void {
  for (const op of ops) {
    const parts = decodePointer(op.path);
    if (parts.length === 0) throw new Error(`${where}: whole-document ops are not supported`);
    let parent: any = doc;
    for (const p of parts.slice(0, -1)) {
      if (parent === null || typeof parent !== "object" || !(p in parent)) {
        throw new Error(`${where}: path ${op.path} does not exist (at "${p}")`);
      }
      parent = parent[p];
    }
    const last = parts[parts.length - 1];
    const isArr = Array.isArray(parent);
    const idx = isArr ? (last === "-" ? parent.length : Number(last)) : -1;
    if (isArr && (!Number.isInteger(idx) || idx < 0)) throw new Error(`${where}: bad array index in ${op.path}`);
    switch (op.op) {
      case "add":
        if (isArr) {
          if (idx > parent.length) throw new Error(`${where}: index out of range in ${op.path}`);
          parent.splice(idx, 0, structuredClone(op.value));
        } else parent[last] = structuredClone(op.value);
        break;
      case "replace":
        if (isArr ? idx >= parent.length : !(last in parent)) throw new Error(`${where}: replace of a missing ${op.path}`);
        parent[isArr ? idx : last] = structuredClone(op.value);
        break;
      case "remove":
        if (isArr ? idx >= parent.length : !(last in parent)) throw new Error(`${where}: remove of a missing ${op.path}`);
        if (isArr) parent.splice(idx, 1);
        else delete parent[last];
        break;
      case "test": {
        const cur = isArr ? parent[idx] : parent[last];
        if (!deepEqual(cur, op.value)) {
          throw new Error(`${where}: test failed at ${op.path}: ${JSON.stringify(cur)} != ${JSON.stringify(op.value)}`);
        }
        break;
      }
      default:
        throw new Error(`${where}: unsupported op ${op.op}`);
    }
  }
}

function matchesTarget(o: Obj, t: Obj): boolean {
  const anchored = (re: string, v: string | undefined) => v !== undefined && new RegExp(`^(?:${re})$`).test(v);
  const [group, version] = String(o.apiVersion).includes("/") ? String(o.apiVersion).split("/") : ["", o.apiVersion];
  if (t.kind !== undefined && !anchored(t.kind, o.kind)) return false;
  if (t.name !== undefined && !anchored(t.name, o.metadata?.name)) return false;
  if (t.namespace !== undefined && !anchored(t.namespace, o.metadata?.namespace)) return false;
  if (t.group !== undefined && !anchored(t.group, group)) return false;
  if (t.version !== undefined && !anchored(t.version, version)) return false;
  for (const k of Object.keys(t)) {
    if (!["kind", "name", "namespace", "group", "version"].includes(k)) throw new Error(`unsupported patch target field ${k}`);
  }
  return true;
}

function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  let tag: string | undefined;
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { name: rest, tag, digest };
}

function applyImages(objs: Obj[], images: Obj[]): void {
  for (const o of objs) {
    const podSpec = o.kind === "Pod" ? o.spec : o.spec?.template?.spec;
    if (!podSpec) continue;
    for (const c of [...(podSpec.containers ?? []), ...(podSpec.initContainers ?? [])]) {
      const cur = splitImage(String(c.image));
      const rule = images.find((i) => i.name === cur.name);
      if (!rule) continue;
      const name = rule.newName ?? cur.name;
      if (rule.digest) c.image = `${name}@${rule.digest}`;
      else if (rule.newTag) c.image = `${name}:${rule.newTag}`;
      else c.image = `${name}${cur.tag ? `:${cur.tag}` : ""}${cur.digest ? `@${cur.digest}` : ""}`;
    }
  }
}

/** `kustomize build dir`, for the subset of kustomize the overlays use. */
export function kustomizeBuild(dir: string): Obj[] {
  const kfile = ["kustomization.yaml", "kustomization.yml", "Kustomization"].map((f) => join(dir, f)).find(existsSync);
  if (!kfile) throw new Error(`no kustomization in ${relative(ROOT, dir)}`);
  const where = relative(ROOT, kfile);
  const k = loadYaml(kfile);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${where}: field "${key}" is not supported by the test renderer`);
  }
  const objs: Obj[] = [];
  for (const r of k.resources ?? []) {
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new Error(`${where}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) objs.push(...kustomizeBuild(p));
    else {
      if (relative(dir, p).startsWith("..")) throw new Error(`${where}: file ${r} is outside the kustomization root (kustomize refuses it)`);
      objs.push(...loadYamlDocs(p));
    }
  }
  for (const [i, patch] of (k.patches ?? []).entries()) {
    const pw = `${where} patches[${i}]`;
    if (!patch.target) throw new Error(`${pw}: a target is required`);
    if (!!patch.path === !!patch.patch) throw new Error(`${pw}: exactly one of path / patch`);
    if (patch.path && relative(dir, resolve(dir, patch.path)).startsWith("..")) throw new Error(`${pw}: outside the root`);
    const parsed: unknown = patch.path ? loadYaml(resolve(dir, patch.path)) : parseAllDocuments(String(patch.patch))[0]?.toJS();
    if (!Array.isArray(parsed)) throw new Error(`${pw}: only JSON 6902 patches (a list of ops) are supported`);
    const targets = objs.filter((o) => matchesTarget(o, patch.target));
    if (targets.length === 0) throw new Error(`${pw}: target ${JSON.stringify(patch.target)} matches nothing`);
    for (const t of targets) applyJson6902(t, parsed, pw);
  }
  if (k.namespace) {
    for (const o of objs) {
      o.metadata ??= {};
      // kustomize's namespace transformer also renames Namespace objects (kubernetes-sigs/kustomize#4979).
      if (o.kind === "Namespace") o.metadata.name = k.namespace;
      else if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
    }
  }
  if (k.images) applyImages(objs, k.images);
  const seen = new Set<string>();
  for (const o of objs) {
    const id = resourceId(o);
    if (seen.has(id)) throw new Error(`${where}: duplicate resource ${id}`);
    seen.add(id);
  }
  return objs;
}

// ---------------------------------------------------------------------------------------------
// Istio CRD schemas
// ---------------------------------------------------------------------------------------------

const addFormats = (addFormatsModule as any).default ?? addFormatsModule;
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
// ajv-formats covers every format the CRDs use (date-time, int32, double, byte).
const validators = new Map<string, ValidateFunction>();

export const ISTIO_GROUPS = new Set(["networking.istio.io", "extensions.istio.io", "security.istio.io", "telemetry.istio.io"]);

export function isIstio(o: Obj): boolean {
  return ISTIO_GROUPS.has(String(o.apiVersion ?? "").split("/")[0]);
}

/** The schema file for kind X at apiVersion group/version: <kind>-<group prefix>-<version>.json. */
export function schemaFile(o: Obj): string {
  const [group, version] = String(o.apiVersion).split("/");
  return join(SCHEMAS_DIR, `${String(o.kind).toLowerCase()}-${group.split(".")[0]}-${version}.json`);
}

/** Validates the whole object against its CRD schema; returns ajv's errors as strings. */
export function validateIstio(o: Obj): string[] {
  const file = schemaFile(o);
  if (!existsSync(file)) return [`no schema ${relative(SHARED, file)} for ${o.apiVersion} ${o.kind}`];
  let v = validators.get(file);
  if (!v) {
    const schema = JSON.parse(readText(file));
    const gvk = schema["x-kubernetes-group-version-kind"];
    if (gvk) {
      const list = Array.isArray(gvk) ? gvk : [gvk];
      const [group, version] = String(o.apiVersion).split("/");
      if (!list.some((g: Obj) => g.kind === o.kind && g.group === group && g.version === version)) {
        return [`${relative(SHARED, file)} is not the schema of ${o.apiVersion} ${o.kind}`];
      }
    }
    delete schema.$schema;
    v = ajv.compile(schema);
    validators.set(file, v);
  }
  if (v(o)) return [];
  return (v.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes objects: the minimal required-field checks (no API server here).
// ---------------------------------------------------------------------------------------------

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

export const CORE_KINDS: Record<string, string> = {
  Namespace: "v1",
  ServiceAccount: "v1",
  Service: "v1",
  ConfigMap: "v1",
  Secret: "v1",
  Deployment: "apps/v1",
};

function checkLabels(where: string, labels: unknown, errors: string[]): void {
  if (labels === undefined) return;
  if (labels === null || typeof labels !== "object") return void errors.push(`${where}: labels must be a map`);
  for (const [k, v] of Object.entries(labels as Obj)) {
    if (!LABEL_KEY.test(k)) errors.push(`${where}: bad label key ${k}`);
    if (typeof v !== "string" || !LABEL_VALUE.test(v)) errors.push(`${where}: label ${k} must be a string of <= 63 valid characters, got ${JSON.stringify(v)}`);
  }
}

/** Checks every object has apiVersion/kind/metadata.name, and the kind-specific required fields. */
export function checkKubeObject(o: Obj): string[] {
  const errors: string[] = [];
  const id = `${o.kind ?? "?"}/${o.metadata?.name ?? "?"}`;
  if (typeof o.apiVersion !== "string" || o.apiVersion === "") errors.push(`${id}: apiVersion missing`);
  if (typeof o.kind !== "string" || o.kind === "") errors.push(`${id}: kind missing`);
  if (typeof o.metadata?.name !== "string" || !DNS1123_SUBDOMAIN.test(o.metadata.name) || o.metadata.name.length > 253) {
    errors.push(`${id}: metadata.name missing or not a DNS-1123 subdomain`);
  }
  if (!CLUSTER_SCOPED.has(o.kind) && (typeof o.metadata?.namespace !== "string" || !DNS1123_LABEL.test(o.metadata.namespace))) {
    errors.push(`${id}: namespaced object without a valid metadata.namespace`);
  }
  if (CLUSTER_SCOPED.has(o.kind) && o.metadata?.namespace !== undefined) errors.push(`${id}: cluster-scoped object with a namespace`);
  checkLabels(`${id} metadata`, o.metadata?.labels, errors);
  if (o.kind in CORE_KINDS && o.apiVersion !== CORE_KINDS[o.kind]) errors.push(`${id}: apiVersion must be ${CORE_KINDS[o.kind]}`);
  if (o.kind === "Namespace" && !DNS1123_LABEL.test(o.metadata?.name ?? "")) errors.push(`${id}: a namespace name is a DNS-1123 label`);
  if (o.kind === "Deployment") errors.push(...checkDeployment(o, id));
  if (o.kind === "Service") errors.push(...checkService(o, id));
  return errors;
}

function checkDeployment(o: Obj, id: string): string[] {
  const e: string[] = [];
  const sel = o.spec?.selector?.matchLabels;
  const tpl = o.spec?.template;
  const podLabels = tpl?.metadata?.labels ?? {};
  checkLabels(`${id} pod template`, podLabels, e);
  if (!sel || Object.keys(sel).length === 0) e.push(`${id}: spec.selector.matchLabels is required`);
  else for (const [k, v] of Object.entries(sel)) if (podLabels[k] !== v) e.push(`${id}: selector ${k}=${v} does not match the pod template labels`);
  const spec = tpl?.spec;
  if (!spec) return [...e, `${id}: spec.template.spec is required`];
  const containers: Obj[] = spec.containers ?? [];
  if (containers.length === 0) e.push(`${id}: at least one container is required`);
  const volumes = new Set((spec.volumes ?? []).map((v: Obj) => v.name));
  const names = new Set<string>();
  for (const c of containers) {
    const cid = `${id} container ${c.name}`;
    if (typeof c.name !== "string" || !DNS1123_LABEL.test(c.name)) e.push(`${cid}: name must be a DNS-1123 label`);
    if (names.has(c.name)) e.push(`${cid}: duplicate container name`);
    names.add(c.name);
    if (typeof c.image !== "string" || c.image === "") e.push(`${cid}: image is required`);
    const portNames = new Set<string>();
    for (const p of c.ports ?? []) {
      if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) e.push(`${cid}: containerPort must be 1..65535`);
      if (p.name !== undefined) {
        if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.name) || p.name.length > 15) e.push(`${cid}: bad port name ${p.name}`);
        portNames.add(p.name);
      }
      if (p.protocol !== undefined && !["TCP", "UDP", "SCTP"].includes(p.protocol)) e.push(`${cid}: bad protocol ${p.protocol}`);
    }
    for (const probeName of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      const probe = c[probeName];
      if (!probe) continue;
      const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
      if (typeof port === "string" && !portNames.has(port)) e.push(`${cid}: ${probeName} port ${port} is not a named container port`);
      if (probe.httpGet && typeof probe.httpGet.path !== "string") e.push(`${cid}: ${probeName}.httpGet.path is required`);
    }
    const envNames = new Set<string>();
    for (const env of c.env ?? []) {
      if (typeof env.name !== "string" || env.name === "") e.push(`${cid}: env entry without a name`);
      if (envNames.has(env.name)) e.push(`${cid}: duplicate env ${env.name}`);
      envNames.add(env.name);
      if (env.value !== undefined && typeof env.value !== "string") e.push(`${cid}: env ${env.name} value must be a string`);
    }
    for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) e.push(`${cid}: volumeMount ${m.name} has no volume`);
  }
  return e;
}

function checkService(o: Obj, id: string): string[] {
  const e: string[] = [];
  const ports: Obj[] = o.spec?.ports ?? [];
  if (ports.length === 0) e.push(`${id}: spec.ports is required`);
  for (const p of ports) {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) e.push(`${id}: port must be 1..65535`);
    if (ports.length > 1 && !p.name) e.push(`${id}: ports need names when there are several`);
  }
  if (!o.spec?.selector || Object.keys(o.spec.selector).length === 0) e.push(`${id}: spec.selector is required (no selector = no endpoints)`);
  return e;
}

/** Pod labels of each Deployment, to check Service selectors and targetPorts against. */
export function podTemplates(objs: Obj[]): { ns: string; labels: Obj; containers: Obj[] }[] {
  return objs
    .filter((o) => o.kind === "Deployment")
    .map((d) => ({ ns: d.metadata.namespace, labels: d.spec.template.metadata.labels ?? {}, containers: d.spec.template.spec.containers }));
}

export function selects(selector: Obj, labels: Obj): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The cluster names an Istio sidecar has for these Services and ServiceEntries (outbound|port||host). */
export function istioClusters(objs: Obj[]): string[] {
  const out: string[] = [];
  for (const o of objs) {
    if (o.kind === "Service") {
      for (const p of o.spec.ports) out.push(`outbound|${p.port}||${o.metadata.name}.${o.metadata.namespace}.svc.cluster.local`);
    }
    if (o.kind === "ServiceEntry") {
      for (const h of o.spec.hosts) for (const p of o.spec.ports ?? []) out.push(`outbound|${p.number}||${h}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The filter's configuration parser, through the proxy-wasm host emulator (test/proxy-wasm-host).
// ---------------------------------------------------------------------------------------------

export interface FilterConfigResult {
  configured: boolean;
  logs: string[];
}

/** What these tests use of the emulator (test/proxy-wasm-host/API.md). */
interface EmulatorModule {
  EmulatorOptions: new () => any;
  ProxyWasmHost: { create(opts: any): Promise<any> };
}

let emulator: Promise<EmulatorModule> | undefined;

async function loadEmulator(): Promise<EmulatorModule> {
  const entry = join(ROOT, "test", "proxy-wasm-host", "index.ts");
  if (!existsSync(entry)) {
    throw new Error("test/proxy-wasm-host/index.ts is missing: the proxy-wasm host emulator is needed to run the filter's config parser");
  }
  // A computed specifier keeps `tsc` independent of the emulator's exact types.
  const spec = "../proxy-wasm-host/index.ts";
  emulator ??= import(spec) as Promise<EmulatorModule>;
  return emulator;
}

/**
 * Loads build/filter.wasm in the emulator with `configuration` (the JSON string Envoy or istiod
 * hands the filter) and the clusters the proxy knows, and reports whether on_vm_start and
 * on_configure accepted it.
 */
export async function runFilterConfig(
  configuration: string,
  clusters: string[],
  options: { labels?: Record<string, string>; allowOnHeadersStopIteration?: boolean } = {},
): Promise<FilterConfigResult> {
  if (!existsSync(FILTER_WASM)) throw new Error("build/filter.wasm is missing: run `npm run build` (npm test does)");
  const { EmulatorOptions, ProxyWasmHost } = await loadEmulator();
  let opts = new EmulatorOptions()
    .withWasmFile(FILTER_WASM)
    .withPluginConfiguration(configuration)
    .withClusters(clusters)
    .withAllowOnHeadersStopIteration(options.allowOnHeadersStopIteration ?? false);
  if (options.labels) opts = opts.withNodeMetadata({ LABELS: options.labels, NAMESPACE: "test" });
  const host = await ProxyWasmHost.create(opts);
  let logs: string[] = [];
  try {
    logs = host.getLogs();
  } catch {
    /* logs are only diagnostics */
  }
  return { configured: host.configured === true, logs };
}

// ---------------------------------------------------------------------------------------------
// Commands in shell scripts and READMEs
// ---------------------------------------------------------------------------------------------

const COMMAND_RE = /(?:^|[\s(])((?:npm|docker|curl) .*)$/;

/** Commands verify.sh runs: the `npm|docker|curl ...` tail of each non-comment line. */
export function verifyCommands(script: string): string[] {
  const out: string[] = [];
  for (const line of script.split("\n")) {
    const t = line.trim();
    if (t.startsWith("#") || t.startsWith("printf") || t.startsWith("local ")) continue;
    const m = COMMAND_RE.exec(t);
    if (!m) continue;
    let cmd = m[1];
    cmd = cmd.replace(/\s*(>&2|2>&1)?\s*\|\|\s*true$/, "").replace(/\s*>&2$/, "");
    if (t.includes("$(")) cmd = cmd.replace(/\)"?$/, "");
    out.push(cmd.trim());
  }
  return out;
}

/** Commands the README documents: every line of its ```sh blocks. */
export function readmeCommands(markdown: string, lang = "sh"): string[] {
  const out: string[] = [];
  const re = new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g");
  for (const m of markdown.matchAll(re)) {
    for (const line of m[1].split("\n")) {
      const t = line.trim();
      if (t && !t.startsWith("#")) out.push(t);
    }
  }
  return out;
}

