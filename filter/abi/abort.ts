// Replacement for AssemblyScript's `abort` (built with `--use abort=filter/abi/abort/onAbort`).
// Reached only on genuine bugs (out-of-bounds, failed assertion, allocator failure):
// logs at critical through proxy_log, which Envoy allows even during _initialize, then
// traps. Trapping matters: under Envoy a WASI `proc_exit` returns and the module would
// carry on in a broken state.
import { proxy_log } from "./imports";
import { toBytes } from "./bytes";
import { LogLevel } from "./status";

let aborting = false;

export function onAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  // A second abort while reporting the first (e.g. the allocator itself failed): just trap.
  if (!aborting) {
    aborting = true;
    const text = "abort: " + (message === null ? "" : message) + " at " +
      (fileName === null ? "?" : fileName) + ":" + line.toString() + ":" + column.toString();
    const bytes = toBytes(text);
    proxy_log(LogLevel.Critical, changetype<usize>(bytes), bytes.byteLength);
  }
  unreachable();
}
