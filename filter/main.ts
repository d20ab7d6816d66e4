// Entry point of filter.wasm: the proxy-wasm exports plus the mesh-mirror root context.
import { RootContext, registerRootContext } from "./abi/context";
import { MeshMirrorRoot } from "./root";

export * from "./abi/exports";

registerRootContext((id: u32): RootContext => new MeshMirrorRoot(id));
