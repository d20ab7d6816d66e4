// Shared set-up for the filter suites: the release build/filter.wasm run in the Envoy emulator.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EmulatorOptions, ProxyWasmHost, type Header } from "../proxy-wasm-host/index.ts";

export const WASM_PATH = fileURLToPath(new URL("../../build/filter.wasm", import.meta.url));
export const CACHE_CLUSTER = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";

let wasm: Uint8Array | undefined;
/** The release module; a missing build fails the suite (never a skip). */
export function filterWasm(): Uint8Array {
  if (!wasm) {
    if (!existsSync(WASM_PATH)) throw new Error(`${WASM_PATH} is missing: run \`npm run build\` first`);
    wasm = readFileSync(WASM_PATH);
  }
  return wasm;
}

export type Stack = "test" | "mirror";

export function config(stack: Stack | "auto", extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { stack, cache_cluster: CACHE_CLUSTER, ...extra };
}

/** Emulator options with the filter, `configuration`, and the clusters this proxy knows. */
export function options(configuration: Record<string, unknown> | string, clusters: string[] = [CACHE_CLUSTER]): EmulatorOptions {
  return new EmulatorOptions()
    .withWasmBytes(filterWasm())
    .withPluginConfiguration(typeof configuration === "string" ? configuration : JSON.stringify(configuration))
    .withClusters(clusters);
}

export async function host(stack: Stack, extra: Record<string, unknown> = {}, tune?: (o: EmulatorOptions) => EmulatorOptions): Promise<ProxyWasmHost> {
  const o = options(config(stack, extra));
  const h = await ProxyWasmHost.create(tune ? tune(o) : o);
  if (!h.configured) throw new Error(`filter refused its configuration: ${h.getLogs().join(" | ")}`);
  return h;
}

/** An outbound request as the app sends it (no stack header unless added). */
export function request(extra: Header[] = [], authority = "api.example.com"): Header[] {
  return [
    [":method", "GET"],
    [":path", "/v1/items?page=2"],
    [":authority", authority],
    [":scheme", "http"],
    ["x-request-id", "req-1"],
    ["accept", "application/json"],
    ...extra,
  ];
}

/** A POST with a JSON body to follow. */
export function post(extra: Header[] = []): Header[] {
  return request([["content-type", "application/json"], ...extra]).map(([k, v]) => (k === ":method" ? [k, "POST"] : [k, v]) as Header);
}

export function without(headers: Header[], name: string): Header[] {
  return headers.filter(([k]) => k !== name);
}

export function values(headers: Header[], name: string): string[] {
  return headers.filter(([k]) => k === name).map(([, v]) => v);
}

export const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b ?? new Uint8Array(0));

/** The one pending cache call (fails when there is not exactly one). */
export function onlyCall(h: ProxyWasmHost) {
  const calls = h.getPendingHttpCalls();
  if (calls.length !== 1) throw new Error(`expected one pending http call, got ${calls.length}`);
  return calls[0];
}

export function counters(h: ProxyWasmHost): Record<string, number> {
  const names = ["tagged", "passthrough", "dispatched", "answered", "failed_open", "refused", "no_request_id", "body_not_buffered", "shadow_restored"];
  return Object.fromEntries(names.map((n) => [n, h.getCounterValue(`mesh_mirror.${n}`)]));
}
