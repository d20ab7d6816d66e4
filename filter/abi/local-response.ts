// proxy_send_local_response. Envoy always answers Ok and sends the reply after the current
// callback returns, through this filter's own response callbacks; StreamContext guards
// against a second call for the same stream (envoyproxy/envoy#28826).
import { proxy_send_local_response } from "./imports";
import { stage, stagedSize } from "./bytes";
import { Header, serializePairs } from "./pairs";
import { WasmResult } from "./status";

/** gRPC status meaning "not a gRPC reply". */
export const NO_GRPC_STATUS: i32 = -1;

export function sendLocalResponse(
  statusCode: u32, details: string, body: ArrayBuffer, headers: Header[], grpcStatus: i32 = NO_GRPC_STATUS,
): WasmResult {
  const h = serializePairs(headers);
  const d = stage(details);
  return <WasmResult>proxy_send_local_response(
    statusCode, d, stagedSize(), changetype<usize>(body), body.byteLength, changetype<usize>(h), h.byteLength, grpcStatus,
  );
}

/** sendLocalResponse in wire form: `details` as bytes (`toBytes`, made once), the body as raw
 * bytes, the headers serialized (pairs.ts). The host copies everything before it returns. */
export function sendLocalResponsePairs(
  statusCode: u32, details: ArrayBuffer, bodyPtr: usize, bodySize: usize, headersPtr: usize, headersSize: usize,
  grpcStatus: i32 = NO_GRPC_STATUS,
): WasmResult {
  return <WasmResult>proxy_send_local_response(
    statusCode, changetype<usize>(details), details.byteLength, bodyPtr, bodySize, headersPtr, headersSize, grpcStatus,
  );
}
