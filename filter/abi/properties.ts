// Properties (contract.md §6): a path is a list of segments joined by NUL
// (["xds", "node", "metadata", "LABELS", "app"]); values are raw bytes with a typed encoding.
import { proxy_get_property, proxy_set_property } from "./imports";
import { SLOT_A, SLOT_B, clearSlots, stage, stagedSize, takeBytes, takeString } from "./bytes";
import { Header, deserializePairs } from "./pairs";
import { Result, WasmResult } from "./status";

export function getProperty(path: string[]): Result<ArrayBuffer> {
  const p = stage(path.join("\0"));
  clearSlots();
  const r = <WasmResult>proxy_get_property(p, stagedSize(), SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) return new Result<ArrayBuffer>(r, new ArrayBuffer(0));
  return new Result<ArrayBuffer>(r, takeBytes(load<usize>(SLOT_A), load<usize>(SLOT_B)));
}

/** Stores `value` in the stream's filter state (Envoy: `wasm.<path>`). */
export function setProperty(path: string[], value: ArrayBuffer): WasmResult {
  const p = stage(path.join("\0"));
  return <WasmResult>proxy_set_property(p, stagedSize(), changetype<usize>(value), value.byteLength);
}

/** A string or bytes property, as a byte string. */
export function getPropertyString(path: string[]): Result<string> {
  return getPropertyStringAt(path.join("\0"));
}

/** getPropertyString for a path already joined with NUL (`propertyPath`): for properties read
 * on every request, without rebuilding the path each time. */
export function getPropertyStringAt(joinedPath: string): Result<string> {
  const p = stage(joinedPath);
  clearSlots();
  const r = <WasmResult>proxy_get_property(p, stagedSize(), SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) return new Result<string>(r, "");
  return new Result<string>(r, takeString(load<usize>(SLOT_A), load<usize>(SLOT_B)));
}

/** The NUL-joined form of a property path, for getPropertyStringAt. */
export function propertyPath(path: string[]): string {
  return path.join("\0");
}

/** int/uint/timestamp/duration: 8 bytes little-endian. Other sizes → SerializationFailure. */
export function decodeInt(value: ArrayBuffer): Result<i64> {
  if (value.byteLength != 8) return new Result<i64>(WasmResult.SerializationFailure, 0);
  return new Result<i64>(WasmResult.Ok, load<i64>(changetype<usize>(value)));
}

/** double (numbers inside a protobuf Struct, such as node metadata): 8 bytes IEEE-754 LE. */
export function decodeDouble(value: ArrayBuffer): Result<f64> {
  if (value.byteLength != 8) return new Result<f64>(WasmResult.SerializationFailure, 0);
  return new Result<f64>(WasmResult.Ok, load<f64>(changetype<usize>(value)));
}

export function decodeBool(value: ArrayBuffer): Result<bool> {
  if (value.byteLength != 1) return new Result<bool>(WasmResult.SerializationFailure, false);
  return new Result<bool>(WasmResult.Ok, load<u8>(changetype<usize>(value)) != 0);
}

/** Maps (headers, Struct) and lists (items as names with empty values) use the pairs encoding. */
export function decodePairs(value: ArrayBuffer): Result<Header[]> {
  const pairs = deserializePairs(changetype<usize>(value), <usize>value.byteLength);
  if (pairs === null) return new Result<Header[]>(WasmResult.SerializationFailure, []);
  return new Result<Header[]>(WasmResult.Ok, pairs);
}
