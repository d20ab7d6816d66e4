// Public entry of the proxy-wasm host emulator (see API.md).
export { EmulatorOptions } from "./options.ts";
export type { PropertyValue, StructValue } from "./options.ts";
export { ProxyWasmHost } from "./host.ts";
export type { AddRootContextOptions, StreamInfo } from "./host.ts";
export {
  Action,
  BodyAction,
  LogLevel,
  Status,
  MapType,
  BufferType,
  StreamType,
} from "./types.ts";
export type {
  Bytes,
  DownstreamResponse,
  FailurePolicy,
  Header,
  HeadersInput,
  HttpCall,
  HttpCallFailure,
  HttpCallResponse,
  LocalResponse,
  LogEntry,
  RootContextInfo,
  StreamState,
  TraceEntry,
  UpstreamRequest,
} from "./types.ts";
export { encodePairs, decodePairs } from "./pairs.ts";
export { envoyGeneratedResponse } from "./http-call.ts";
export { envoyHostFunctions, checkLinkable } from "./imports.ts";
export { readModule } from "./wasm-module.ts";
