// The `wasm` logger (contract.md §9): levels 0..5, lines prefixed like Envoy's
// "wasm log <plugin name> <root_id> <vm_id>: ", only kept at or above the configured level.
import { LogLevel, type LogEntry } from "./types.ts";

export class LogSink {
  readonly entries: LogEntry[] = [];
  constructor(
    public level: LogLevel,
    private readonly echo: ((e: LogEntry) => void) | undefined,
    private readonly maxEntries: number,
  ) {}

  write(level: LogLevel, message: string, worker: number, prefix: string): void {
    if (level < this.level) return;
    const e: LogEntry = { level, message, worker, line: `wasm log${prefix}: ${message}` };
    this.entries.push(e);
    // Trim in bulk (keeps the newest maxEntries) so long benchmark runs stay O(1) per line.
    if (this.entries.length >= this.maxEntries * 2) this.entries.splice(0, this.entries.length - this.maxEntries);
    this.echo?.(e);
  }

  messages(level?: LogLevel): string[] {
    return this.entries.filter((e) => level === undefined || e.level === level).map((e) => e.message);
  }
}
