// A plugin's root context inside one VM (contract.md §2/§3): receives on_vm_start/on_configure,
// http-call responses, ticks and queue notifications; owns the outstanding http calls (they are
// cancelled with it, not with the stream that caused them, §7).
import type { Vm } from "./vm.ts";
import type { Header, HttpCall } from "./types.ts";
import type { Plugin } from "./plugin.ts";
import type { PropertyScope } from "./properties.ts";

export interface HttpCallResponseData {
  headers: Header[];
  body: Uint8Array;
  trailers: Header[];
}

export class RootContext {
  readonly kind = "root" as const;
  /** Set while on_configure runs: only then is the plugin configuration buffer readable (Envoy temp_plugin_). */
  configuring = false;
  configured = false;
  created = false;
  deleted = false;
  tickPeriodMs = 0;
  readonly httpCalls = new Map<number, HttpCall>();
  /** Envoy's http_call_response_: set only while on_http_call_response runs (§7). */
  httpCallResponse: HttpCallResponseData | null = null;
  /** proxy_get_status: last failure (code 11 "reset"); the message is cleared after the callback. */
  statusCode = 0;
  statusMessage = "";
  scopeCache: PropertyScope | undefined;

  constructor(
    readonly vm: Vm,
    readonly id: number,
    readonly plugin: Plugin,
  ) {}

  get root(): RootContext {
    return this;
  }
}
