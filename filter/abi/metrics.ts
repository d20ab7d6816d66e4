// Stats (contract.md §9). Envoy stores them under the hidden prefix `wasmcustom.`; every VM
// that defines the same name updates the same stat. Ids start at 0 in Envoy. A counter whose
// definition failed skips its updates, so a stats problem never fails a request.
import { proxy_define_metric, proxy_get_metric, proxy_increment_metric, proxy_record_metric } from "./imports";
import { SLOT_A, stage, stagedSize } from "./bytes";
import { MetricType, Result, WasmResult } from "./status";

export function defineMetric(type: MetricType, name: string): Result<u32> {
  const n = stage(name);
  const r = <WasmResult>proxy_define_metric(type, n, stagedSize(), SLOT_A);
  return new Result<u32>(r, r == WasmResult.Ok ? load<u32>(SLOT_A) : 0);
}

/** Counters take delta > 0; gauges any sign. */
export function incrementMetric(id: u32, delta: i64): WasmResult {
  return <WasmResult>proxy_increment_metric(id, delta);
}

/** Counter: adds; gauge: sets; histogram: records a sample. */
export function recordMetric(id: u32, value: u64): WasmResult {
  return <WasmResult>proxy_record_metric(id, value);
}

/** Reads through proxy_get_metric (the SDK we replaced called proxy_record_metric here and
 * overwrote the metric). Histograms answer BadArgument. */
export function getMetric(id: u32): Result<u64> {
  const r = <WasmResult>proxy_get_metric(id, SLOT_A);
  return new Result<u64>(r, r == WasmResult.Ok ? load<u64>(SLOT_A) : 0);
}

export class Counter {
  readonly id: u32;
  readonly defined: WasmResult;
  constructor(name: string) {
    const r = defineMetric(MetricType.Counter, name);
    this.id = r.value;
    this.defined = r.status;
  }
  increment(delta: i64 = 1): WasmResult {
    if (this.defined != WasmResult.Ok) return this.defined;
    return incrementMetric(this.id, delta);
  }
  value(): Result<u64> {
    if (this.defined != WasmResult.Ok) return new Result<u64>(this.defined, 0);
    return getMetric(this.id);
  }
}
