// Header and trailer maps of the current stream (and of an HTTP-call response, see http-call.ts).
// Envoy only exposes a map in the phase it belongs to; out of phase it answers BadArgument,
// which is returned here like any other status.
import {
  proxy_add_header_map_value, proxy_get_header_map_pairs, proxy_get_header_map_size,
  proxy_get_header_map_value, proxy_remove_header_map_value, proxy_replace_header_map_value,
  proxy_set_header_map_pairs,
} from "./imports";
import { SLOT_A, SLOT_B, clearSlots, freeHostBuffer, stage, stage2, stagedSecondSize, stagedSize, takeString } from "./bytes";
import { Header, PairsView, deserializePairs, serializePairs } from "./pairs";
import { MapType, Result, WasmResult } from "./status";

/** First value of `name` (Envoy returns only the first of repeated headers; use getHeaders for all). */
export function getHeader(map: MapType, name: string): Result<string> {
  const key = stage(name);
  clearSlots();
  const r = <WasmResult>proxy_get_header_map_value(map, key, stagedSize(), SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) return new Result<string>(r, "");
  return new Result<string>(r, takeString(load<usize>(SLOT_A), load<usize>(SLOT_B)));
}

/** Every entry in order, repeated headers as separate entries. */
export function getHeaders(map: MapType): Result<Header[]> {
  clearSlots();
  const r = <WasmResult>proxy_get_header_map_pairs(map, SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) return new Result<Header[]>(r, []);
  const ptr = load<usize>(SLOT_A);
  const pairs = deserializePairs(ptr, load<usize>(SLOT_B));
  freeHostBuffer(ptr);
  if (pairs === null) return new Result<Header[]>(WasmResult.SerializationFailure, []);
  return new Result<Header[]>(r, pairs);
}

/** The whole map, undecoded: `view` takes the host's buffer (free it with `view.release()`).
 * SerializationFailure when the host's data is malformed (already freed then). */
export function readHeaderPairs(map: MapType, view: PairsView): WasmResult {
  clearSlots();
  const r = <WasmResult>proxy_get_header_map_pairs(map, SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) {
    view.release();
    return r;
  }
  return view.reset(load<usize>(SLOT_A), load<usize>(SLOT_B), true) ? r : WasmResult.SerializationFailure;
}

/** Replaces the whole map. */
export function setHeaders(map: MapType, headers: Header[]): WasmResult {
  const bytes = serializePairs(headers);
  return <WasmResult>proxy_set_header_map_pairs(map, changetype<usize>(bytes), bytes.byteLength);
}

export function addHeader(map: MapType, name: string, value: string): WasmResult {
  const k = stage2(name, value);
  return <WasmResult>proxy_add_header_map_value(map, k, stagedSize(), k + stagedSize(), stagedSecondSize());
}

/** Sets `name` to `value`, adding it when absent. */
export function replaceHeader(map: MapType, name: string, value: string): WasmResult {
  const k = stage2(name, value);
  return <WasmResult>proxy_replace_header_map_value(map, k, stagedSize(), k + stagedSize(), stagedSecondSize());
}

/** Removes every value of `name`. */
export function removeHeader(map: MapType, name: string): WasmResult {
  const k = stage(name);
  return <WasmResult>proxy_remove_header_map_value(map, k, stagedSize());
}

/** Envoy reports the map's serialized byte size here, not its entry count. */
export function getHeaderMapSize(map: MapType): Result<u32> {
  const r = <WasmResult>proxy_get_header_map_size(map, SLOT_A);
  return new Result<u32>(r, r == WasmResult.Ok ? load<u32>(SLOT_A) : 0);
}
