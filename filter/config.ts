// The plugin configuration (CONTRACTS.md "Filter configuration"): parsing and validation,
// pure (no host calls). Every problem is reported as one line that names the key and the fix.
import { asciiLowerCase } from "./abi/bytes";
import { JsonKind, JsonValue, parseJson, quote } from "./json";
import { BUILTIN_PASSTHROUGH, Passthrough, cacheHosts } from "./passthrough";

export enum Stack { Test, Mirror, Auto }
export enum Direction { Outbound, Inbound }

// Defaults, beside the keys they belong to.
const DEFAULT_STACK_LABEL = "stack";
const DEFAULT_STACK_HEADER = "x-mirror-stack";
const DEFAULT_TEST_VALUE = "test";
const DEFAULT_MIRROR_VALUE = "mirror";
const DEFAULT_REQUEST_ID_HEADER = "x-request-id";
const DEFAULT_TIMEOUT_MS: u32 = 5000;
const DEFAULT_MAX_BODY_BYTES: u32 = 1048576;
const MAX_TIMEOUT_MS: f64 = 2147483647;
// cpp-host caps a VM's memory at 1 GiB; a body cannot be buffered beyond that.
const MAX_BODY_LIMIT: f64 = 1073741824;

const KEYS = "stack, stack_label, cache_cluster, stack_header, stack_values, request_id_header, timeout_ms, max_body_bytes, passthrough, buffer_bodies, direction";

export class Config {
  stack: Stack = Stack.Auto;
  stackLabel: string = DEFAULT_STACK_LABEL;
  cacheCluster: string = "";
  stackHeader: string = DEFAULT_STACK_HEADER;
  testValue: string = DEFAULT_TEST_VALUE;
  mirrorValue: string = DEFAULT_MIRROR_VALUE;
  requestIdHeader: string = DEFAULT_REQUEST_ID_HEADER;
  timeoutMs: u32 = DEFAULT_TIMEOUT_MS;
  maxBodyBytes: u32 = DEFAULT_MAX_BODY_BYTES;
  passthrough: Passthrough = new Passthrough();
  bufferBodies: bool = false;
  direction: Direction = Direction.Outbound;

  /** The stack header's value for this (resolved) stack. */
  get stackValue(): string {
    return this.stack == Stack.Mirror ? this.mirrorValue : this.testValue;
  }
}

export class ConfigResult {
  constructor(public config: Config | null, public error: string) {}
}

/** The error line: `configuration rejected: "<key>": <problem>. Fix: <fix>.` */
export function configError(key: string, problem: string, fix: string): string {
  return "mesh-mirror: configuration rejected: " + quote(key) + ": " + problem + ". Fix: " + fix + ".";
}

function fail(key: string, problem: string, fix: string): ConfigResult {
  return new ConfigResult(null, configError(key, problem, fix));
}

function isTokenChar(c: i32): bool {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A)) return true;
  return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2A || c == 0x2B || c == 0x2D || c == 0x2E ||
    c == 0x5E || c == 0x5F || c == 0x60 || c == 0x7C || c == 0x7E;
}

function isHeaderName(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

/** A value Envoy accepts in a header: no control bytes except tab, no edge whitespace. */
function isHeaderValue(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c != 0x09) || c == 0x7F) return false;
  }
  const first = s.charCodeAt(0);
  const last = s.charCodeAt(s.length - 1);
  return first != 0x20 && first != 0x09 && last != 0x20 && last != 0x09;
}

/** Printable ASCII only: used for names that end up in property paths and cluster lookups. */
function isPrintable(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7F) return false;
  }
  return true;
}

function isInteger(v: JsonValue): bool {
  return v.kind == JsonKind.Number && Math.floor(v.number) == v.number && isFinite(v.number);
}

/** Parses and validates; `text` is the configuration as a byte string. */
export function parseConfig(text: string): ConfigResult {
  const KEYS_FIX = "remove it; known keys are " + KEYS;
  if (text.length == 0) {
    return fail("stack", "the configuration is empty", "set the plugin configuration to a JSON object such as {\"stack\":\"test\",\"cache_cluster\":\"outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local\"}");
  }
  const parsed = parseJson(text);
  const root = parsed.value;
  if (root === null) {
    return fail("configuration", "not valid JSON (" + parsed.error + ")", "write the plugin configuration as one JSON object");
  }
  if (root.kind != JsonKind.Object) {
    return fail("configuration", "expected a JSON object, got " + root.describe(), "write the plugin configuration as one JSON object");
  }
  const c = new Config();
  let haveStack = false;
  for (let i = 0; i < root.keys.length; i++) {
    const key = unchecked(root.keys[i]);
    const v = unchecked(root.items[i]);
    if (key == "stack") {
      const s = v.kind == JsonKind.String ? v.text : "";
      if (s == "test") c.stack = Stack.Test;
      else if (s == "mirror") c.stack = Stack.Mirror;
      else if (s == "auto") c.stack = Stack.Auto;
      else return fail(key, "expected \"test\", \"mirror\" or \"auto\", got " + v.describe(), "set \"stack\" to the stack this sidecar serves, or \"auto\" to read it from the pod label");
      haveStack = true;
    } else if (key == "stack_label") {
      if (v.kind != JsonKind.String || !isPrintable(v.text)) return fail(key, "expected a pod label name, got " + v.describe(), "set \"stack_label\" to the label that holds test or mirror, e.g. \"stack\"");
      c.stackLabel = v.text;
    } else if (key == "cache_cluster") {
      if (v.kind != JsonKind.String || !isPrintable(v.text)) return fail(key, "expected an Envoy cluster name, got " + v.describe(), "set \"cache_cluster\" to the mirror-cache cluster, e.g. \"outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local\"");
      c.cacheCluster = v.text;
    } else if (key == "stack_header" || key == "request_id_header") {
      if (v.kind != JsonKind.String || !isHeaderName(v.text)) return fail(key, "expected an HTTP header name, got " + v.describe(), "use letters, digits and '-', e.g. \"" + (key == "stack_header" ? DEFAULT_STACK_HEADER : DEFAULT_REQUEST_ID_HEADER) + "\"");
      // Envoy lower-cases header names; compare and send them that way.
      if (key == "stack_header") c.stackHeader = asciiLowerCase(v.text);
      else c.requestIdHeader = asciiLowerCase(v.text);
    } else if (key == "stack_values") {
      const err = readStackValues(c, v);
      if (err.length > 0) return new ConfigResult(null, err);
    } else if (key == "timeout_ms") {
      if (!isInteger(v) || v.number <= 0 || v.number > MAX_TIMEOUT_MS) return fail(key, "expected an integer > 0 (milliseconds), got " + v.describe(), "set \"timeout_ms\" to the dispatch timeout in milliseconds, e.g. 5000");
      c.timeoutMs = <u32>v.number;
    } else if (key == "max_body_bytes") {
      if (!isInteger(v) || v.number < 0 || v.number > MAX_BODY_LIMIT) return fail(key, "expected an integer from 0 to 1073741824 (bytes), got " + v.describe(), "set \"max_body_bytes\" to the largest request body to buffer, e.g. 1048576");
      c.maxBodyBytes = <u32>v.number;
    } else if (key == "passthrough") {
      if (v.kind != JsonKind.Array) return fail(key, "expected an array of hosts, IPs or CIDRs, got " + v.describe(), "write it as a list, e.g. [\"10.0.0.0/8\", \"vault.internal\"]");
      for (let j = 0; j < v.items.length; j++) {
        const item = unchecked(v.items[j]);
        const name = "passthrough[" + j.toString() + "]";
        if (item.kind != JsonKind.String || !c.passthrough.add(item.text)) return fail(name, "expected a host name, IP address or CIDR, got " + item.describe(), "use a form such as \"metadata.internal\", \"10.1.2.3\", \"fd00::1\" or \"10.0.0.0/8\"");
      }
    } else if (key == "buffer_bodies") {
      if (v.kind != JsonKind.Bool) return fail(key, "expected true or false, got " + v.describe(), "set \"buffer_bodies\" to true only where Envoy's PluginConfig has allow_on_headers_stop_iteration: true, else false");
      c.bufferBodies = v.bool;
    } else if (key == "direction") {
      const s = v.kind == JsonKind.String ? v.text : "";
      if (s == "outbound") c.direction = Direction.Outbound;
      else if (s == "inbound") c.direction = Direction.Inbound;
      else return fail(key, "expected \"outbound\" or \"inbound\", got " + v.describe(), "use \"outbound\" for the client side (default) or \"inbound\" to restore -shadow hosts on the server side");
    } else {
      return fail(key, "unknown key", KEYS_FIX);
    }
  }
  if (!haveStack) return fail("stack", "missing", "add \"stack\": \"test\", \"mirror\" or \"auto\"");
  if (c.direction == Direction.Outbound && c.cacheCluster.length == 0) {
    return fail("cache_cluster", "missing", "add \"cache_cluster\" naming the mirror-cache Envoy cluster, e.g. \"outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local\"");
  }
  if (c.stackHeader == c.requestIdHeader) {
    return fail("request_id_header", "is the same header as \"stack_header\" (" + quote(c.stackHeader) + ")", "use two different headers");
  }
  for (let i = 0; i < BUILTIN_PASSTHROUGH.length; i++) c.passthrough.add(unchecked(BUILTIN_PASSTHROUGH[i]));
  const own = cacheHosts(c.cacheCluster);
  for (let i = 0; i < own.length; i++) c.passthrough.add(unchecked(own[i]));
  return new ConfigResult(c, "");
}

/** Reads `{ "test": string, "mirror": string }`; returns an error line or "". */
function readStackValues(c: Config, v: JsonValue): string {
  const fix = "set \"stack_values\" to {\"test\": \"<value>\", \"mirror\": \"<value>\"}, e.g. {\"test\": \"false\", \"mirror\": \"true\"}";
  if (v.kind != JsonKind.Object) return configError("stack_values", "expected an object, got " + v.describe(), fix);
  let test = "";
  let mirror = "";
  for (let i = 0; i < v.keys.length; i++) {
    const key = unchecked(v.keys[i]);
    const item = unchecked(v.items[i]);
    const name = "stack_values." + key;
    if (key != "test" && key != "mirror") return configError(name, "unknown key", "keep only \"test\" and \"mirror\" in \"stack_values\"");
    if (item.kind != JsonKind.String || !isHeaderValue(item.text)) return configError(name, "expected a non-empty header value, got " + item.describe(), fix);
    if (key == "test") test = item.text;
    else mirror = item.text;
  }
  if (test.length == 0) return configError("stack_values.test", "missing", fix);
  if (mirror.length == 0) return configError("stack_values.mirror", "missing", fix);
  if (test == mirror) return configError("stack_values", "test and mirror have the same value " + quote(test), "give the two stacks different values");
  c.testValue = test;
  c.mirrorValue = mirror;
  return "";
}
