// Body and configuration buffers.
import { proxy_get_buffer_bytes, proxy_get_buffer_status, proxy_set_buffer_bytes } from "./imports";
import { HostBytes, SLOT_A, SLOT_B, clearSlots, takeBytes } from "./bytes";
import { BufferType, Result, WasmResult } from "./status";

/** Up to `length` bytes from `start`. An empty buffer can come back as Ok with nothing
 * written (the host does not call malloc for zero bytes); that reads as an empty result. */
export function getBufferBytes(buffer: BufferType, start: u32, length: u32): Result<ArrayBuffer> {
  clearSlots();
  const r = <WasmResult>proxy_get_buffer_bytes(buffer, start, length, SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) return new Result<ArrayBuffer>(r, new ArrayBuffer(0));
  return new Result<ArrayBuffer>(r, takeBytes(load<usize>(SLOT_A), load<usize>(SLOT_B)));
}

/** getBufferBytes without the copy: `into` takes the host's buffer (empty on failure). */
export function readBufferBytes(buffer: BufferType, start: u32, length: u32, into: HostBytes): WasmResult {
  clearSlots();
  const r = <WasmResult>proxy_get_buffer_bytes(buffer, start, length, SLOT_A, SLOT_B);
  if (r != WasmResult.Ok) {
    into.release();
    return r;
  }
  into.take(load<usize>(SLOT_A), load<usize>(SLOT_B));
  return r;
}

/** Current length of a buffer. */
export function getBufferLength(buffer: BufferType): Result<u32> {
  const r = <WasmResult>proxy_get_buffer_status(buffer, SLOT_A, SLOT_B);
  return new Result<u32>(r, r == WasmResult.Ok ? load<u32>(SLOT_A) : 0);
}

/** Envoy supports `start == 0` (drop `length` bytes from the front, then prepend `data`;
 * replace-all when `length` is the current size) and `start >= size` (append). */
export function setBufferBytes(buffer: BufferType, start: u32, length: u32, data: ArrayBuffer): WasmResult {
  return <WasmResult>proxy_set_buffer_bytes(buffer, start, length, changetype<usize>(data), data.byteLength);
}
