// Envoy's connection buffer limit vs the filter's max_body_bytes, in every shipped configuration.
//
// Envoy appends each request body chunk to the buffered body and checks the listener's
// per_connection_buffer_limit_bytes (default 1 MiB) BEFORE the filter's on_request_body sees it,
// answering 413 itself beyond it (../shared/proxy-wasm/contract.md §4). The filter applies its
// fail policy at the headers when content-length is over max_body_bytes, but a chunked body is only
// measured chunk by chunk, so wherever the filter buffers (buffer_bodies: true) the limit must leave
// room for the chunk that crosses max_body_bytes: the rule is limit >= 2 x max_body_bytes.
// The WasmPlugin path (buffer_bodies: false) never buffers, which is checked here too, and the Node
// sandbox's sidecars (the e2e flow) use the same limit as envoy/sandbox.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SHIPPED_BUFFER_LIMIT_BYTES } from "../../envoy/node-sandbox/sandbox.ts";
import { Action, EmulatorOptions, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { FILTER_WASM, kustomizeBuild, loadYaml, ROOT, type Obj } from "./helpers.ts";

const ENVOY_DEFAULT_LIMIT = 1024 * 1024; // Listener.per_connection_buffer_limit_bytes default
const DEFAULT_MAX_BODY_BYTES = 1048576; // CONTRACTS.md
const WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const SANDBOX = join(ROOT, "envoy", "sandbox");
const SANDBOX_FILES = ["envoy-test.yaml", "envoy-mirror.yaml"];
const ISTIO = join(ROOT, "envoy", "istio");
const OVERLAYS = readdirSync(join(ISTIO, "overlays")).filter((d) => statSync(join(ISTIO, "overlays", d)).isDirectory()).sort();

/** One place the filter runs, with the buffer limit Envoy applies there. */
interface Placement {
  where: string;
  filter: Obj; // the filter's configuration (parsed JSON)
  limit: number; // effective per_connection_buffer_limit_bytes
}

/** The rule: where the filter buffers, Envoy's limit is at least twice max_body_bytes. */
function violations(placements: Placement[]): string[] {
  const out: string[] = [];
  for (const p of placements) {
    if (p.filter.buffer_bodies !== true) continue;
    const max = Number(p.filter.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES);
    if (!(p.limit >= 2 * max)) out.push(`${p.where}: buffer limit ${p.limit} < 2 x max_body_bytes ${max}`);
  }
  return out;
}

function sandboxPlacements(envoy: Obj, file: string): Placement[] {
  const out: Placement[] = [];
  for (const l of envoy.static_resources.listeners) {
    const limit = Number(l.per_connection_buffer_limit_bytes ?? ENVOY_DEFAULT_LIMIT);
    for (const fc of l.filter_chains) {
      for (const f of fc.filters) {
        if (f.typed_config?.["@type"] !== HCM_TYPE) continue;
        for (const hf of f.typed_config.http_filters) {
          if (hf.typed_config?.["@type"] !== WASM_TYPE) continue;
          out.push({ where: `${file} listener ${l.name}`, filter: JSON.parse(hf.typed_config.config.configuration.value), limit });
        }
      }
    }
  }
  return out;
}

const subset = (a: Obj, b: Obj) => Object.entries(a).every(([k, v]) => b[k] === v);

/** Istio: the outbound limit an EnvoyFilter's workloads get from LISTENER MERGE patches of
 * EnvoyFilters in their namespace that select at least those workloads and cover every outbound
 * listener (no listener name or port match). */
function istioOutboundLimit(objs: Obj[], namespace: string, labels: Obj): number {
  let limit = ENVOY_DEFAULT_LIMIT;
  for (const ef of objs) {
    if (ef.kind !== "EnvoyFilter" || ef.metadata.namespace !== namespace) continue;
    if (!subset(ef.spec.workloadSelector?.labels ?? {}, labels)) continue;
    for (const p of ef.spec.configPatches ?? []) {
      if (p.applyTo !== "LISTENER" || p.patch?.operation !== "MERGE") continue;
      if (!["SIDECAR_OUTBOUND", "ANY", undefined].includes(p.match?.context)) continue;
      if (p.match?.listener?.name !== undefined || p.match?.listener?.portNumber !== undefined) continue;
      const v = p.patch.value?.per_connection_buffer_limit_bytes;
      if (v !== undefined) limit = Number(v);
    }
  }
  return limit;
}

function istioPlacements(objs: Obj[], overlay: string): Placement[] {
  const out: Placement[] = [];
  for (const o of objs) {
    const where = `${overlay}: ${o.kind} ${o.metadata.namespace}/${o.metadata.name}`;
    if (o.kind === "WasmPlugin") {
      // istiod cannot set a listener limit with a WasmPlugin: Envoy's default applies.
      out.push({ where, filter: o.spec.pluginConfig ?? {}, limit: ENVOY_DEFAULT_LIMIT });
    }
    if (o.kind === "EnvoyFilter") {
      for (const p of o.spec.configPatches) {
        if (p.applyTo !== "EXTENSION_CONFIG") continue;
        const ts = p.patch.value.typed_config;
        const wasm = ts["@type"] === "type.googleapis.com/udpa.type.v1.TypedStruct" ? ts.value : ts;
        const filter = JSON.parse(wasm.config.configuration.value);
        const labels = o.spec.workloadSelector?.labels ?? {};
        const inbound = p.match?.context === "SIDECAR_INBOUND";
        out.push({ where, filter, limit: inbound ? ENVOY_DEFAULT_LIMIT : istioOutboundLimit(objs, o.metadata.namespace, labels) });
      }
    }
  }
  return out;
}

describe("connection buffer limit >= 2 x max_body_bytes wherever the filter buffers bodies", () => {
  it("envoy/sandbox: every listener whose filter has buffer_bodies: true", () => {
    let buffering = 0;
    for (const file of SANDBOX_FILES) {
      const placements = sandboxPlacements(loadYaml(join(SANDBOX, file)), file);
      buffering += placements.filter((p) => p.filter.buffer_bodies === true).length;
      expect(violations(placements), file).toEqual([]);
    }
    expect(buffering).toBe(2); // both egress listeners buffer: the rule is not vacuous
  });

  for (const overlay of OVERLAYS) {
    it(`envoy/istio overlay ${overlay} (rendered)`, () => {
      const objs = kustomizeBuild(join(ISTIO, "overlays", overlay));
      expect(violations(istioPlacements(objs, overlay))).toEqual([]);
    });
  }

  it("the EnvoyFilter path buffers (buffer_bodies: true) and raises the outbound limit for both stacks", () => {
    const objs = kustomizeBuild(join(ISTIO, "overlays", "envoyfilter"));
    const buffering = istioPlacements(objs, "envoyfilter").filter((p) => p.filter.buffer_bodies === true);
    expect(buffering.map((p) => p.filter.stack).sort()).toEqual(["mirror", "test"]);
    for (const p of buffering) expect(p.limit, p.where).toBeGreaterThan(ENVOY_DEFAULT_LIMIT);
  });

  it("the WasmPlugin paths never buffer (buffer_bodies false: Envoy's default limit is enough)", () => {
    for (const overlay of OVERLAYS) {
      for (const o of kustomizeBuild(join(ISTIO, "overlays", overlay)).filter((x) => x.kind === "WasmPlugin")) {
        expect(o.spec.pluginConfig?.buffer_bodies ?? false, `${overlay} ${o.metadata.name}`).toBe(false);
      }
    }
  });

  it("the rule is not vacuous: without the LISTENER patch, or at limit = max_body_bytes, it fails", () => {
    const objs = kustomizeBuild(join(ISTIO, "overlays", "envoyfilter"));
    const stripped = structuredClone(objs);
    for (const o of stripped) {
      if (o.kind === "EnvoyFilter") o.spec.configPatches = o.spec.configPatches.filter((p: Obj) => p.applyTo !== "LISTENER");
    }
    expect(violations(istioPlacements(stripped, "stripped"))).toHaveLength(2);

    const envoy = loadYaml(join(SANDBOX, "envoy-test.yaml"));
    for (const l of envoy.static_resources.listeners) l.per_connection_buffer_limit_bytes = DEFAULT_MAX_BODY_BYTES;
    expect(violations(sandboxPlacements(envoy, "equal"))).toHaveLength(1);
    for (const l of envoy.static_resources.listeners) delete l.per_connection_buffer_limit_bytes;
    expect(violations(sandboxPlacements(envoy, "default"))).toHaveLength(1);
  });
});

describe("the e2e flow uses the shipped limit", () => {
  it("the Node sandbox's sidecars default to envoy/sandbox's per_connection_buffer_limit_bytes", () => {
    for (const file of SANDBOX_FILES) {
      const envoy = loadYaml(join(SANDBOX, file));
      const egress = envoy.static_resources.listeners.find((l: Obj) => l.name === "egress");
      expect(Number(egress.per_connection_buffer_limit_bytes), file).toBe(SHIPPED_BUFFER_LIMIT_BYTES);
    }
    // and the sandbox's own filter configuration (buffer_bodies true, default max_body_bytes) obeys the rule
    expect(violations([{ where: "node-sandbox", filter: { buffer_bodies: true }, limit: SHIPPED_BUFFER_LIMIT_BYTES }])).toEqual([]);
  });

  it("the EnvoyFilter LISTENER patches set the same limit as envoy/sandbox", () => {
    const objs = kustomizeBuild(join(ISTIO, "overlays", "envoyfilter"));
    const limits = istioPlacements(objs, "envoyfilter").filter((p) => p.filter.buffer_bodies === true).map((p) => p.limit);
    expect(new Set(limits)).toEqual(new Set([SHIPPED_BUFFER_LIMIT_BYTES]));
  });
});

describe("WasmPlugin configuration, run in the emulator: a POST body is never held", () => {
  const objs = kustomizeBuild(join(ISTIO, "overlays", "wasmplugin"));
  for (const stack of ["test", "mirror"] as const) {
    it(`${stack} stack: decided at the headers, with Envoy's default 1 MiB limit and no allow_on_headers_stop_iteration`, async () => {
      const wp = objs.find((o) => o.kind === "WasmPlugin" && o.spec.pluginConfig.stack === stack && o.spec.pluginConfig.direction !== "inbound")!;
      const host = await ProxyWasmHost.create(
        new EmulatorOptions()
          .withWasmFile(FILTER_WASM)
          .withPluginConfiguration(JSON.stringify(wp.spec.pluginConfig))
          .withClusters([wp.spec.pluginConfig.cache_cluster])
          .withBufferLimitBytes(ENVOY_DEFAULT_LIMIT),
      );
      expect(host.configured).toBe(true);
      const s = host.initializeHttpContext();
      const r = host.callOnRequestHeaders(
        s,
        [[":method", "POST"], [":path", "/orders"], [":authority", "api.example.com"], [":scheme", "http"], ["x-request-id", "r1"], ["content-length", "1500000"]],
        false,
      );
      if (stack === "test") {
        expect(r).toBe(Action.Continue);
        for (let sent = 0; sent < 1_500_000; sent += 65536) host.callOnRequestBody(s, new Uint8Array(Math.min(65536, 1_500_000 - sent)), sent + 65536 >= 1_500_000);
        expect(host.getUpstreamRequest(s)?.body.length).toBe(1_500_000);
        expect(host.getLocalResponse(s)).toBeUndefined();
      } else {
        const reply = host.getLocalResponse(s)!;
        expect(reply.statusCode).toBe(503);
        expect(reply.headers.find(([k]: [string, string]) => k === "x-mirror-cache")?.[1]).toBe("body-not-buffered");
      }
      expect(host.getPendingHttpCalls()).toHaveLength(0);
    });
  }
});
