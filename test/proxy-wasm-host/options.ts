// Builder for everything Envoy would know about the plugin and the proxy (API.md). Mirrors the
// Go SDK's proxytest options; the extra knobs (workers, failure policy, buffer limit, log level)
// are Envoy settings the filter's behaviour depends on.
import { readFileSync } from "node:fs";
import { LogLevel, type Bytes, type FailurePolicy, type LogEntry } from "./types.ts";

export type PropertyValue = string | Uint8Array | number | bigint | boolean;
/** A google.protobuf.Struct as JSON (node metadata). */
export type StructValue = null | boolean | number | string | StructValue[] | { [k: string]: StructValue };

export class EmulatorOptions {
  wasmBytes?: Uint8Array;
  wasmPath?: string;
  pluginConfiguration: Uint8Array = new Uint8Array();
  vmConfiguration: Uint8Array = new Uint8Array();
  pluginName = "";
  rootId = "";
  vmId = "";
  clusters = new Set<string>();
  nodeId = "sidecar~10.0.0.5~app-7d9c.shop~shop.svc.cluster.local";
  nodeCluster = "app.shop";
  nodeMetadata: { [k: string]: StructValue } = {};
  legacyNodeProperties = false;
  /** `\0`-joined path → raw bytes; consulted before the computed properties. */
  properties = new Map<string, Uint8Array>();
  allowOnHeadersStopIteration = false;
  bufferLimitBytes = 1 << 20;
  workers = 1;
  failurePolicy: FailurePolicy = "FAIL_CLOSED";
  logLevel: LogLevel = LogLevel.Trace;
  logEcho?: (e: LogEntry) => void;
  maxLogEntries = 10_000;
  trace = false;
  environment: Record<string, string> = {};

  withWasmFile(path: string): this {
    this.wasmPath = path;
    this.wasmBytes = new Uint8Array(readFileSync(path));
    return this;
  }
  withWasmBytes(bytes: Uint8Array): this {
    this.wasmBytes = bytes;
    return this;
  }
  withPluginConfiguration(conf: Bytes | object): this {
    this.pluginConfiguration = toBytes(typeof conf === "object" && !(conf instanceof Uint8Array) ? JSON.stringify(conf) : conf);
    return this;
  }
  withVmConfiguration(conf: Bytes): this {
    this.vmConfiguration = toBytes(conf);
    return this;
  }
  /** PluginConfig.name → `plugin_name` (Istio: `<namespace>.<WasmPlugin name>`). */
  withPluginName(name: string): this {
    this.pluginName = name;
    return this;
  }
  withRootId(id: string): this {
    this.rootId = id;
    return this;
  }
  /** vm_id: namespace of shared data (Istio leaves it empty, §9). */
  withVmId(id: string): this {
    this.vmId = id;
    return this;
  }
  /** Clusters this proxy knows; `proxy_http_call` to any other name is BadArgument (§7). */
  withClusters(names: Iterable<string>): this {
    for (const n of names) this.clusters.add(n);
    return this;
  }
  withNodeId(id: string): this {
    this.nodeId = id;
    return this;
  }
  /** xds.node.metadata (a Struct): JSON-like values; numbers are served as 8-byte doubles (§6). */
  withNodeMetadata(md: Record<string, unknown>): this {
    this.nodeMetadata = md as { [k: string]: StructValue };
    return this;
  }
  /** Envoy < 1.33: node metadata under top-level `node` and no `xds` attributes (§6). */
  withLegacyNodeProperties(on = true): this {
    this.legacyNodeProperties = on;
    return this;
  }
  /** Raw property by path segments; numbers/bigints become 8-byte LE ints, booleans 1 byte (§6). */
  withProperty(path: string[], value: PropertyValue): this {
    this.properties.set(path.join("\0"), encodePropertyValue(value));
    return this;
  }
  /** PluginConfig.allow_on_headers_stop_iteration (Envoy ≥ 1.35, §4/§11). */
  withAllowOnHeadersStopIteration(on = true): this {
    this.allowOnHeadersStopIteration = on;
    return this;
  }
  /** Connection buffer limit: a buffered request body over it → 413, response → 500 (§4). */
  withBufferLimitBytes(n: number): this {
    this.bufferLimitBytes = n;
    return this;
  }
  /** VM clones, one per worker thread (Envoy also has one on the main thread: pass N+1 for that). */
  withWorkers(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new Error("withWorkers: n must be an integer ≥ 1");
    this.workers = n;
    return this;
  }
  /** PluginConfig.failure_policy (§10). Default FAIL_CLOSED, as Envoy when unspecified. */
  withFailurePolicy(p: FailurePolicy): this {
    this.failurePolicy = p;
    return this;
  }
  /** Level of Envoy's `wasm` logger: lines below it are dropped, `proxy_get_log_level` returns it. */
  withLogLevel(level: LogLevel): this {
    this.logLevel = level;
    return this;
  }
  withLogEcho(fn: (e: LogEntry) => void): this {
    this.logEcho = fn;
    return this;
  }
  /** vm_config.environment_variables, served by WASI environ_get. */
  withEnvironment(env: Record<string, string>): this {
    this.environment = env;
    return this;
  }
  /** Record every call into the VM (host.getTrace()); off by default to keep benchmarks honest. */
  withTrace(on = true): this {
    this.trace = on;
    return this;
  }
}

export function toBytes(b: Bytes | undefined): Uint8Array {
  if (b === undefined) return new Uint8Array();
  return typeof b === "string" ? new Uint8Array(Buffer.from(b, "utf8")) : b;
}

export function encodePropertyValue(v: PropertyValue): Uint8Array {
  if (typeof v === "string" || v instanceof Uint8Array) return toBytes(v);
  if (typeof v === "boolean") return new Uint8Array([v ? 1 : 0]);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(v), true);
  return out;
}
