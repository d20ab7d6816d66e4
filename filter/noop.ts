// Entry point of noop.wasm, the benchmark baseline: the same runtime, every callback Continue.
import { RootContext, registerRootContext } from "./abi/context";

export * from "./abi/exports";

registerRootContext((id: u32): RootContext => new RootContext(id));
