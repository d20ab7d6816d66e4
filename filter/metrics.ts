// The filter's counters (Envoy stats, shown without the hidden `wasmcustom.` prefix).
import { Counter } from "./abi/metrics";

export class FilterMetrics {
  /** Outbound requests that got the stack header. */
  tagged: Counter = new Counter("mesh_mirror.tagged");
  /** Requests to a metadata endpoint, a passthrough entry or the cache itself, left untouched. */
  passthrough: Counter = new Counter("mesh_mirror.passthrough");
  /** Calls sent to the cache cluster. */
  dispatched: Counter = new Counter("mesh_mirror.dispatched");
  /** Cache answers returned to the app as local replies. */
  answered: Counter = new Counter("mesh_mirror.answered");
  /** Test-stack requests sent to their real upstream because the cache failed. */
  failedOpen: Counter = new Counter("mesh_mirror.failed_open");
  /** Mirror-stack requests answered 503 by the filter (any reason). */
  refused: Counter = new Counter("mesh_mirror.refused");
  /** Requests without a request id (test: sent upstream untagged; mirror: refused). */
  noRequestId: Counter = new Counter("mesh_mirror.no_request_id");
  /** Requests with a body while buffer_bodies is false (test: sent upstream tagged; mirror: refused). */
  bodyNotBuffered: Counter = new Counter("mesh_mirror.body_not_buffered");
  /** Inbound mirror requests whose -shadow host was restored. */
  shadowRestored: Counter = new Counter("mesh_mirror.shadow_restored");
}
