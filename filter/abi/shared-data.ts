// Shared data: the host's process-wide key/value store, the only state shared across the
// per-worker VMs (contract.md §9). In Istio every plugin shares one namespace: prefix keys.
// Every successful set gets a new CAS; set with cas 0 writes unconditionally; set with a
// non-zero cas on an existing key fails with CasMismatch when someone wrote in between.
import { proxy_get_shared_data, proxy_set_shared_data } from "./imports";
import { SLOT_A, SLOT_B, SLOT_C, clearSlots, stage, stagedSize, takeBytes } from "./bytes";
import { Result, WasmResult } from "./status";

export class SharedValue {
  constructor(public value: ArrayBuffer, public cas: u32) {}
}

/** NotFound when the key was never set. */
export function getSharedData(key: string): Result<SharedValue> {
  const k = stage(key);
  clearSlots();
  store<u32>(SLOT_C, 0);
  const r = <WasmResult>proxy_get_shared_data(k, stagedSize(), SLOT_A, SLOT_B, SLOT_C);
  if (r != WasmResult.Ok) return new Result<SharedValue>(r, new SharedValue(new ArrayBuffer(0), 0));
  const value = takeBytes(load<usize>(SLOT_A), load<usize>(SLOT_B));
  return new Result<SharedValue>(r, new SharedValue(value, load<u32>(SLOT_C)));
}

export function setSharedData(key: string, value: ArrayBuffer, cas: u32 = 0): WasmResult {
  const k = stage(key);
  return <WasmResult>proxy_set_shared_data(k, stagedSize(), changetype<usize>(value), value.byteLength, cas);
}

/** Read-modify-write with CAS: `update` gets the current value (null when absent) and returns
 * the new one; retried on CasMismatch up to `attempts` times (then CasMismatch is returned). */
export function updateSharedData(key: string, update: (current: ArrayBuffer | null) => ArrayBuffer, attempts: i32 = 8): WasmResult {
  for (let i = 0; i < attempts; i++) {
    const got = getSharedData(key);
    if (!got.ok && got.status != WasmResult.NotFound) return got.status;
    const current: ArrayBuffer | null = got.ok ? got.value.value : null;
    const r = setSharedData(key, update(current), got.ok ? got.value.cas : 0);
    if (r != WasmResult.CasMismatch) return r;
  }
  return WasmResult.CasMismatch;
}
