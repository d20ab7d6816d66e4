// What host functions need from the host (one ProxyWasmHost = one Envoy process).
import type { EmulatorOptions } from "./options.ts";
import type { LogSink } from "./log.ts";
import type { SharedData, SharedQueues, QueueOwner } from "./shared-data.ts";
import type { VmMetrics } from "./metrics.ts";
import type { PropertyScope } from "./properties.ts";
import type { Vm, Context } from "./vm.ts";
import type { RootContext } from "./root-context.ts";
import type { HttpCall, Status } from "./types.ts";

export interface HostServices {
  readonly options: EmulatorOptions;
  readonly vmId: string;
  readonly log: LogSink;
  readonly defaultLogPrefix: string;
  readonly sharedData: SharedData;
  readonly queues: SharedQueues;
  metricsOf(vm: Vm): VmMetrics;
  propertyScope(ctx: Context | null): PropertyScope;
  /** proxy_done from a root context whose on_done returned false. */
  rootDone(root: RootContext): Status;
  queueReady(owner: QueueOwner, token: number): void;
  httpCallDispatched(vm: Vm, call: HttpCall): void;
}
