// The plugin's root context: reads and validates the configuration, resolves the stack,
// defines the counters, and creates a MeshMirrorStream per HTTP stream. One per plugin
// instance; a VM holds several (inbound and outbound, or several WasmPlugins).
import { bytesToString } from "./abi/bytes";
import { getBufferBytes } from "./abi/buffers";
import { RootContext, StreamContext } from "./abi/context";
import { log } from "./abi/log";
import { BufferType, LogLevel, resultName } from "./abi/status";
import { Config, Stack, configError, parseConfig } from "./config";
import { Tagging } from "./dispatch";
import { FilterMetrics } from "./metrics";
import { stackFromLabel } from "./stack";
import { MeshMirrorStream } from "./stream";

export class MeshMirrorRoot extends RootContext {
  /** Null until a configuration was accepted; streams then pass everything untouched. */
  config: Config | null = null;
  metrics: FilterMetrics | null = null;
  /** The configuration's header names and stack value as bytes, set with `config`. */
  tagging: Tagging | null = null;

  onConfigure(configurationSize: u32): bool {
    let text = "";
    if (configurationSize > 0) {
      const raw = getBufferBytes(BufferType.PluginConfiguration, 0, configurationSize);
      if (!raw.ok) {
        log(LogLevel.Error, configError("configuration", "could not be read (" + resultName(raw.status) + ")", "check the plugin configuration"));
        return false;
      }
      text = bytesToString(raw.value);
    }
    const parsed = parseConfig(text);
    const c = parsed.config;
    if (c === null) {
      log(LogLevel.Error, parsed.error);
      return false;
    }
    if (c.stack == Stack.Auto) {
      const s = stackFromLabel(c.stackLabel);
      if (s.error.length > 0) {
        log(LogLevel.Error, s.error);
        return false;
      }
      c.stack = s.stack;
    }
    if (this.metrics === null) this.metrics = new FilterMetrics();
    this.tagging = new Tagging(c);
    this.config = c;
    return true;
  }

  createStream(id: u32): StreamContext {
    return new MeshMirrorStream(id, this);
  }
}
