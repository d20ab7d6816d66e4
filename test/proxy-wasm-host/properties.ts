// proxy_get_property (contract.md §6): `\0`-separated paths, traversed like Envoy's
// Context::getProperty (top-level name, then map key / message field / list index), values
// serialized like Envoy's serializeValue (strings raw, ints 8-byte LE, doubles 8-byte IEEE,
// bools 1 byte, maps and lists as pairs, messages as protobuf bytes, null → SerializationFailure).
import type { EmulatorOptions, StructValue } from "./options.ts";
import type { Header } from "./types.ts";

/** CEL-ish value model. */
type Value =
  | { t: "bytes"; v: Uint8Array }
  | { t: "string"; v: string }
  | { t: "int"; v: bigint }
  | { t: "uint"; v: bigint }
  | { t: "double"; v: number }
  | { t: "bool"; v: boolean }
  | { t: "null" }
  | { t: "map"; v: Map<string, Value> }
  | { t: "list"; v: Value[] }
  | { t: "message"; fields: Map<string, Value>; proto: () => Uint8Array };

export const SERIALIZATION_FAILURE = Symbol("SerializationFailure");

/** What the resolver needs to know about the calling context. */
export interface PropertyScope {
  /** Live request headers when Envoy exposes them (request_headers_ or access-log headers). */
  requestHeaders(): readonly Header[] | null;
  responseHeaders(): readonly Header[] | null;
  responseTrailers(): readonly Header[] | null;
  /** Undefined for root contexts (no stream info). */
  stream?: {
    readonly startTimeNs: bigint;
    readonly responseCode?: number;
    readonly responseCodeDetails?: string;
    /** Stands in for the downstream connection id. */
    readonly handle: number;
    readonly filterState: Map<string, Uint8Array>;
  };
  pluginName: string;
  rootId: string;
  vmId: string;
}

/** Scope of a root context: no stream, so no request/response attributes. */
export class RootScope implements PropertyScope {
  constructor(readonly pluginName: string, readonly rootId: string, readonly vmId: string) {}
  requestHeaders(): null { return null; }
  responseHeaders(): null { return null; }
  responseTrailers(): null { return null; }
}

/** What a stream exposes to the resolver (HttpStream satisfies it). */
interface StreamView {
  readonly pReqHeaders: boolean;
  readonly pRespHeaders: boolean;
  readonly pRespTrailers: boolean;
  readonly accessLog: boolean;
  readonly reqHeaders: Header[] | null;
  readonly respHeaders: Header[] | null;
  readonly respTrailers: Header[] | null;
  readonly startTimeNs: bigint;
  readonly responseCode?: number;
  readonly responseCodeDetails?: string;
  readonly handle: number;
  readonly filterState: Map<string, Uint8Array>;
}

/** Scope of a stream: header-derived attributes follow Envoy's activation (the live maps or the access-log ones). */
export class StreamScope implements PropertyScope {
  constructor(readonly pluginName: string, readonly rootId: string, readonly vmId: string, readonly stream: StreamView) {}
  requestHeaders(): Header[] | null { const s = this.stream; return s.pReqHeaders || s.accessLog ? s.reqHeaders : null; }
  responseHeaders(): Header[] | null { const s = this.stream; return s.pRespHeaders || s.accessLog ? s.respHeaders : null; }
  responseTrailers(): Header[] | null { const s = this.stream; return s.pRespTrailers || s.accessLog ? s.respTrailers : null; }
}

const str = (v: string): Value => ({ t: "string", v });

function structToValue(s: StructValue): Value {
  if (s === null) return { t: "null" };
  if (typeof s === "boolean") return { t: "bool", v: s };
  if (typeof s === "number") return { t: "double", v: s };
  if (typeof s === "string") return str(s);
  if (Array.isArray(s)) return { t: "list", v: s.map(structToValue) };
  return { t: "map", v: new Map(Object.entries(s).map(([k, x]) => [k, structToValue(x)])) };
}

// --- protobuf encoding of envoy.config.core.v3.Node {id=1, cluster=2, metadata=3 (Struct)} ---
function varint(n: number, out: number[]): void {
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
}
function lenField(field: number, bytes: Uint8Array | number[], out: number[]): void {
  varint((field << 3) | 2, out);
  varint(bytes.length, out);
  for (const b of bytes) out.push(b);
}
function protoStructValue(s: StructValue): number[] {
  const out: number[] = [];
  if (s === null) { out.push(1 << 3, 0); }
  else if (typeof s === "number") { out.push((2 << 3) | 1); const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, s, true); out.push(...b); }
  else if (typeof s === "string") lenField(3, Buffer.from(s), out);
  else if (typeof s === "boolean") out.push(4 << 3, s ? 1 : 0);
  else if (Array.isArray(s)) { const l: number[] = []; for (const x of s) lenField(1, protoStructValue(x), l); lenField(6, l, out); }
  else lenField(5, protoStruct(s), out);
  return out;
}
function protoStruct(o: { [k: string]: StructValue }): number[] {
  const out: number[] = [];
  for (const [k, v] of Object.entries(o)) {
    const entry: number[] = [];
    lenField(1, Buffer.from(k), entry);
    lenField(2, protoStructValue(v), entry);
    lenField(1, entry, out);
  }
  return out;
}

function nodeMessage(o: EmulatorOptions): Value {
  const fields = new Map<string, Value>([
    ["id", str(o.nodeId)],
    ["cluster", str(o.nodeCluster)],
    ["metadata", structToValue(o.nodeMetadata)],
  ]);
  return {
    t: "message",
    fields,
    proto: () => {
      const out: number[] = [];
      lenField(1, Buffer.from(o.nodeId), out);
      lenField(2, Buffer.from(o.nodeCluster), out);
      lenField(3, protoStruct(o.nodeMetadata), out);
      return new Uint8Array(out);
    },
  };
}

function headersMap(h: readonly Header[]): Value {
  const m = new Map<string, Value>();
  for (const [k, v] of h) {
    const cur = m.get(k);
    m.set(k, str(cur && cur.t === "string" ? `${cur.v},${v}` : v)); // repeated values comma-joined (§6)
  }
  return { t: "map", v: m };
}

function first(h: readonly Header[], k: string): string | undefined {
  for (const e of h) if (e[0] === k) return e[1];
  return undefined;
}

function requestValue(scope: PropertyScope): Value | undefined {
  const s = scope.stream;
  if (!s) return undefined;
  const m = new Map<string, Value>();
  const h = scope.requestHeaders();
  // Header-derived attributes exist only while Envoy exposes the request headers (Envoy's
  // activation uses request_headers_ or the access-log headers).
  if (h) {
    const path = first(h, ":path");
    if (path !== undefined) {
      m.set("path", str(path));
      const q = path.indexOf("?");
      m.set("url_path", str(q < 0 ? path : path.slice(0, q)));
      m.set("query", str(q < 0 ? "" : path.slice(q + 1)));
    }
    for (const [attr, name] of [["host", ":authority"], ["scheme", ":scheme"], ["method", ":method"], ["referer", "referer"], ["useragent", "user-agent"], ["id", "x-request-id"]] as const) {
      const v = first(h, name);
      if (v !== undefined) m.set(attr, str(v));
    }
    m.set("headers", headersMap(h));
  }
  m.set("time", { t: "int", v: s.startTimeNs }); // timestamp → int64 ns
  m.set("protocol", str("HTTP/1.1"));
  return { t: "map", v: m };
}

function responseValue(scope: PropertyScope): Value | undefined {
  const s = scope.stream;
  if (!s) return undefined;
  const m = new Map<string, Value>();
  if (s.responseCode !== undefined) m.set("code", { t: "int", v: BigInt(s.responseCode) });
  if (s.responseCodeDetails !== undefined) m.set("code_details", str(s.responseCodeDetails));
  const h = scope.responseHeaders();
  if (h) m.set("headers", headersMap(h));
  const t = scope.responseTrailers();
  if (t) m.set("trailers", headersMap(t));
  return { t: "map", v: m };
}

function topLevel(name: string, scope: PropertyScope, o: EmulatorOptions): Value | undefined {
  switch (name) {
    case "plugin_name": return str(scope.pluginName);
    case "plugin_root_id": return str(scope.rootId);
    case "plugin_vm_id": return str(scope.vmId);
    case "connection_id": return scope.stream ? { t: "uint", v: BigInt(scope.stream.handle) } : undefined;
    case "request": return requestValue(scope);
    case "response": return responseValue(scope);
    case "xds":
      // xds.* attributes arrived after the legacy names; the legacy mode models a proxy before them.
      if (o.legacyNodeProperties) return undefined;
      return { t: "map", v: new Map([["node", nodeMessage(o)]]) };
    case "node":
      // Removed in Envoy 1.33 (envoyproxy/envoy#36619); only served in legacy mode.
      return o.legacyNodeProperties ? nodeMessage(o) : undefined;
    case "source": case "destination": case "connection": case "upstream": case "metadata":
    case "filter_state": case "upstream_filter_state":
      return undefined; // only what withProperty provides (exact paths, checked before this)
  }
  // Any other first segment: the CelState set by proxy_set_property under `wasm.<segment>`.
  const fs = scope.stream?.filterState.get(name);
  return fs ? { t: "bytes", v: fs } : undefined;
}

function serialize(v: Value): Uint8Array | typeof SERIALIZATION_FAILURE {
  switch (v.t) {
    case "bytes": return v.v;
    case "string": return new Uint8Array(Buffer.from(v.v, "utf8"));
    case "int": case "uint": { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v.v), true); return b; }
    case "double": { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, v.v, true); return b; }
    case "bool": return new Uint8Array([v.v ? 1 : 0]);
    case "null": return SERIALIZATION_FAILURE;
    case "message": return v.proto();
    case "map": {
      const pairs: Array<[Uint8Array, Uint8Array]> = [];
      for (const [k, x] of v.v) {
        const s = serialize(x);
        if (s === SERIALIZATION_FAILURE) return s;
        pairs.push([Buffer.from(k, "utf8"), s]);
      }
      return rawPairs(pairs);
    }
    case "list": {
      const pairs: Array<[Uint8Array, Uint8Array]> = [];
      for (const x of v.v) {
        const s = serialize(x);
        if (s === SERIALIZATION_FAILURE) return s;
        pairs.push([s, new Uint8Array()]); // list items are the keys, values empty (§6)
      }
      return rawPairs(pairs);
    }
  }
}

/** Pairs encoding (§5) of raw byte keys/values (a double value is not valid UTF-8 text). */
function rawPairs(pairs: Array<[Uint8Array, Uint8Array]>): Uint8Array {
  let size = 4;
  for (const [k, v] of pairs) size += 10 + k.length + v.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, pairs.length, true);
  let s = 4, d = 4 + pairs.length * 8;
  for (const [k, v] of pairs) {
    dv.setUint32(s, k.length, true); dv.setUint32(s + 4, v.length, true); s += 8;
    out.set(k, d); d += k.length + 1;
    out.set(v, d); d += v.length + 1;
  }
  return out;
}

/**
 * Resolve a property path. Returns the serialized bytes, undefined for NotFound, or
 * SERIALIZATION_FAILURE. Exact paths given with withProperty win over computed values.
 */
export function getProperty(path: string, scope: PropertyScope, o: EmulatorOptions): Uint8Array | undefined | typeof SERIALIZATION_FAILURE {
  const raw = o.properties.get(path);
  if (raw) return raw;
  const parts = path.split("\0");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop(); // trailing NUL (SDK style)
  let v = topLevel(parts[0], scope, o);
  for (let i = 1; v && i < parts.length; i++) {
    const part = parts[i];
    if (v.t === "map") v = v.v.get(part);
    else if (v.t === "message") v = v.fields.get(part);
    else if (v.t === "list") {
      const idx = /^-?\d+$/.test(part) ? Number(part) : NaN;
      v = Number.isInteger(idx) && idx >= 0 && idx < v.v.length ? v.v[idx] : undefined;
    } else v = undefined;
  }
  return v ? serialize(v) : undefined;
}

