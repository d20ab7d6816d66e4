// A plugin (one Envoy PluginConfig / Istio WasmPlugin): name, root_id, configuration and the
// failure policy; it has one root context in every VM (§2 "more than one root context per VM").
import type { FailurePolicy } from "./types.ts";
import type { RootContext } from "./root-context.ts";

export interface Plugin {
  /** Handle returned to users (= the root context id, equal in every VM by construction). */
  handle: number;
  name: string;
  rootId: string;
  vmId: string;
  configuration: Uint8Array;
  failurePolicy: FailurePolicy;
  allowOnHeadersStopIteration: boolean;
  /** roots[worker] */
  roots: RootContext[];
  logPrefix: string;
}
