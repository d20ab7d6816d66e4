// The probe fixture (test/host/fixtures/probe.ts) loaded in the emulator, and log helpers.
import { EmulatorOptions, ProxyWasmHost, type Header } from "../../proxy-wasm-host/index.ts";
import { fixture } from "./fixtures.ts";

export const CACHE = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";

export async function probeHost(configure: (o: EmulatorOptions) => EmulatorOptions = (o) => o): Promise<ProxyWasmHost> {
  const bytes = await fixture("probe");
  return ProxyWasmHost.create(configure(new EmulatorOptions().withWasmBytes(bytes).withClusters([CACHE]).withTrace()));
}

/** A GET with the probe's directives. */
export function get(directives: Record<string, string> = {}, path = "/a"): Header[] {
  return [[":method", "GET"], [":path", path], [":authority", "svc.local"], [":scheme", "http"], ...Object.entries(directives)];
}

/** Log lines the probe wrote that start with `prefix`. */
export function lines(host: ProxyWasmHost, prefix: string): string[] {
  return host.getLogs().filter((l) => l.startsWith(prefix));
}

export function last(host: ProxyWasmHost, prefix: string): string {
  const l = lines(host, prefix);
  if (l.length === 0) throw new Error(`no log line starting with "${prefix}"; logs:\n${host.getLogs().join("\n")}`);
  return l[l.length - 1];
}

export const text = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString("utf8");
