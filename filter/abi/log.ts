// Logging through proxy_log at real Envoy levels (0 trace … 5 critical).
// Check `logEnabled` before building an expensive message: the host's level is asked
// each time, so lowering Envoy's `wasm` log level takes effect at once.
// Call these only from callbacks: during _initialize Envoy allows proxy_log but not
// proxy_get_log_level.
import { proxy_get_log_level, proxy_log } from "./imports";
import { SLOT_A, stage, stagedSize } from "./bytes";
import { LogLevel, WasmResult } from "./status";

/** The host's current level; Trace when the host cannot tell (log everything). */
export function logLevel(): LogLevel {
  if (proxy_get_log_level(SLOT_A) != WasmResult.Ok) return LogLevel.Trace;
  return <LogLevel>load<i32>(SLOT_A);
}

export function logEnabled(level: LogLevel): bool {
  return level >= logLevel();
}

/** Writes one line without asking the host's level first. */
export function logAlways(level: LogLevel, message: string): WasmResult {
  const p = stage(message);
  return <WasmResult>proxy_log(level, p, stagedSize());
}

export function log(level: LogLevel, message: string): WasmResult {
  if (!logEnabled(level)) return WasmResult.Ok;
  return logAlways(level, message);
}

export function logDebug(message: string): WasmResult { return log(LogLevel.Debug, message); }
export function logInfo(message: string): WasmResult { return log(LogLevel.Info, message); }
export function logWarn(message: string): WasmResult { return log(LogLevel.Warn, message); }
export function logError(message: string): WasmResult { return log(LogLevel.Error, message); }
