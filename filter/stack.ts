// `stack: "auto"`: the stack comes from the workload's pod label, which Istio copies into the
// node metadata. Envoy ≥ 1.33 exposes it as xds.node.metadata.LABELS, older proxies as
// node.metadata.LABELS (contract.md §6). Runs in on_configure (not at VM start-up, where
// property reads are not allowed).
import { getPropertyString } from "./abi/properties";
import { WasmResult, resultName } from "./abi/status";
import { Stack, configError } from "./config";
import { quote } from "./json";

export class StackResult {
  constructor(public stack: Stack, public error: string) {}
}

export function stackFromLabel(label: string): StackResult {
  let r = getPropertyString(["xds", "node", "metadata", "LABELS", label]);
  if (r.status == WasmResult.NotFound) r = getPropertyString(["node", "metadata", "LABELS", label]);
  const fix = "label the pod " + label + "=test or " + label + "=mirror, or set \"stack\" to \"test\" or \"mirror\"";
  if (!r.ok) {
    return new StackResult(Stack.Auto, configError("stack_label",
      "\"stack\" is \"auto\" but the pod label " + quote(label) + " is not in the node metadata (" + resultName(r.status) + ")", fix));
  }
  if (r.value == "test") return new StackResult(Stack.Test, "");
  if (r.value == "mirror") return new StackResult(Stack.Mirror, "");
  return new StackResult(Stack.Auto, configError("stack_label",
    "\"stack\" is \"auto\" but the pod label " + quote(label) + " is " + quote(r.value) + ", not \"test\" or \"mirror\"", fix));
}
