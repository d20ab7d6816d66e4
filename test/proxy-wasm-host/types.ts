// Public enums and shapes of the emulator. Numeric values are the proxy-wasm ABI 0.2.1 ones
// (contract.md §4), so they can be compared with what the module returns or passes.

/** What Envoy does with the stream after a callback, after Envoy's own conversion (§4). */
export enum Action {
  Continue = 0,
  /** headers: StopIteration · body: StopIterationAndBuffer · trailers: StopIteration */
  StopIteration = 1,
  ContinueAndEndStream = 2,
  StopAllIterationAndBuffer = 3,
  StopAllIterationAndWatermark = 4,
}
/** Body-callback names for the same numbers (on_request_body/on_response_body, §4). */
export enum BodyAction {
  Continue = 0,
  StopIterationAndBuffer = 1,
  StopIterationAndWatermark = 2,
  StopIterationNoBuffer = 3,
}

export enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

/** proxy_status_t / WasmResult (§4). */
export enum Status {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  BadExpression = 5,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  ResultMismatch = 9,
  InternalFailure = 10,
  BrokenConnection = 11,
  Unimplemented = 12,
}

export enum MapType {
  RequestHeaders = 0,
  RequestTrailers = 1,
  ResponseHeaders = 2,
  ResponseTrailers = 3,
  GrpcReceiveInitialMetadata = 4,
  GrpcReceiveTrailingMetadata = 5,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}

export enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcReceiveBuffer = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
  CallData = 8,
}

export enum StreamType {
  Request = 0,
  Response = 1,
  Downstream = 2,
  Upstream = 3,
}

export type Header = [string, string];
export type HeadersInput = Array<[string, string]> | Record<string, string>;
export type Bytes = string | Uint8Array;

export type FailurePolicy = "FAIL_CLOSED" | "FAIL_OPEN" | "FAIL_RELOAD";

export interface HttpCall {
  token: number;
  cluster: string;
  headers: Header[];
  body: Uint8Array;
  trailers: Header[];
  timeoutMs: number;
  /** Handle of the plugin's root context (the `id` from create/addRootContext). */
  rootContextId: number;
  worker: number;
}

export interface HttpCallResponse {
  headers: HeadersInput;
  body?: Bytes;
  trailers?: HeadersInput;
}

export type HttpCallFailure = "reset" | "no-healthy-upstream" | "timeout";

export interface UpstreamRequest {
  headers: Header[];
  body: Uint8Array;
  trailers: Header[];
  /** true once end of stream passed the filter (the whole request reached the upstream). */
  complete: boolean;
}

export interface LocalResponse {
  statusCode: number;
  details: string;
  body: Uint8Array;
  headers: Header[];
  /** gRPC status passed by the module, or undefined when outside 0..16 (§8). */
  grpcStatus: number | undefined;
}

export interface DownstreamResponse {
  headers: Header[];
  body: Uint8Array;
  trailers: Header[];
  complete: boolean;
}

export type StreamState = "running" | "paused" | "upstream" | "local-reply" | "closed";

export interface LogEntry {
  level: LogLevel;
  message: string;
  worker: number;
  /** "wasm log <plugin name> <root_id> <vm_id>: <message>" as Envoy would print it (§9). */
  line: string;
}

export interface RootContextInfo {
  id: number;
  configured: boolean;
}

export interface TraceEntry {
  worker: number;
  fn: string;
  args: number[];
  result: number | undefined;
}
