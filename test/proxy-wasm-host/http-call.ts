// proxy_http_call (contract.md §7): validation in Envoy's order (Context::httpCall), tokens
// stepping by 4 per VM, the call owned by the root context; and the responses Envoy itself
// generates when the cluster is unreachable or slow.
import type { Vm } from "./vm.ts";
import type { RootContext } from "./root-context.ts";
import type { HostServices } from "./services.ts";
import { Status, type Header, type HttpCall, type HttpCallFailure } from "./types.ts";
import { has, replaceValue } from "./pairs.ts";

function lowerCased(h: Header[]): Header[] {
  for (let i = 0; i < h.length; i++) h[i][0] = h[i][0].toLowerCase();
  return h;
}

export function dispatchHttpCall(
  vm: Vm,
  root: RootContext,
  services: HostServices,
  cluster: string,
  rawHeaders: Header[],
  body: Uint8Array,
  rawTrailers: Header[],
  timeoutMs: number,
): { status: Status; token?: number } {
  if (timeoutMs < 0) return { status: Status.BadArgument };
  if (!services.options.clusters.has(cluster)) return { status: Status.BadArgument };
  // buildRequestHeaderMapFromPairs lower-cases names; a plain `host` or a made-up `:host`
  // does not stand in for `:authority`.
  const headers = lowerCased(rawHeaders);
  if (!has(headers, ":path") || !has(headers, ":method") || !has(headers, ":authority")) return { status: Status.BadArgument };
  if (body.length > 0) replaceValue(headers, "content-length", String(body.length));
  const trailers = lowerCased(rawTrailers);
  const token = vm.nextHttpCallToken();
  const call: HttpCall = {
    token,
    cluster,
    headers,
    body, // already a copy of module memory
    trailers,
    timeoutMs,
    rootContextId: root.plugin.handle,
    worker: vm.worker,
  };
  root.httpCalls.set(token, call);
  services.httpCallDispatched(vm, call);
  return { status: Status.Ok, token };
}

/**
 * Envoy's own answers from the async client's router (no upstream involved): 503 when the
 * cluster has no healthy host, 504 when the per-call timeout fires. No x-mirror-cache, no server.
 */
export function envoyGeneratedResponse(kind: Exclude<HttpCallFailure, "reset">): { headers: Header[]; body: Uint8Array } {
  const [status, text] = kind === "timeout" ? [504, "upstream request timeout"] : [503, "no healthy upstream"];
  return {
    headers: [
      [":status", String(status)],
      ["content-length", String(Buffer.byteLength(text))],
      ["content-type", "text/plain"],
    ],
    body: new Uint8Array(Buffer.from(text)),
  };
}
