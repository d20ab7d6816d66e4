// Reads what cpp-host looks at before instantiating (contract.md §1): import signatures (V8
// links by exact signature, and JS imports would silently accept any), and the export order
// (ABI detection takes the first marker function export).
const VAL: Record<number, string> = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "funcref", 0x6f: "externref" };

export interface FuncType {
  params: string[];
  results: string[];
}
export interface ModuleImport {
  module: string;
  name: string;
  kind: "function" | "table" | "memory" | "global" | "tag";
  type?: FuncType;
}
export interface ModuleExport {
  name: string;
  kind: "function" | "table" | "memory" | "global" | "tag";
}

const KINDS = ["function", "table", "memory", "global", "tag"] as const;

export function readModule(bytes: Uint8Array): { imports: ModuleImport[]; exports: ModuleExport[] } {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error("Failed to load Wasm module: not a WebAssembly binary");
  }
  let p = 8;
  const u32 = (): number => {
    let r = 0, s = 0, b: number;
    do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80);
    return r >>> 0;
  };
  const name = (): string => {
    const n = u32();
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + p, n).toString("utf8");
    p += n;
    return s;
  };
  const skipLimits = (): void => { const flags = bytes[p++]; u32(); if (flags & 1) u32(); };
  const types: FuncType[] = [];
  const imports: ModuleImport[] = [];
  const exports: ModuleExport[] = [];
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = u32();
    const end = p + size;
    if (id === 1) {
      for (let n = u32(); n > 0; n--) {
        p++; // 0x60: func form
        const params: string[] = [];
        for (let k = u32(); k > 0; k--) params.push(VAL[bytes[p++]] ?? "?");
        const results: string[] = [];
        for (let k = u32(); k > 0; k--) results.push(VAL[bytes[p++]] ?? "?");
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        const module = name(), field = name(), kind = bytes[p++];
        if (kind === 0) imports.push({ module, name: field, kind: "function", type: types[u32()] });
        else {
          if (kind === 1) { p++; skipLimits(); }        // table: reftype + limits
          else if (kind === 2) skipLimits();            // memory
          else if (kind === 3) p += 2;                  // global: valtype + mut
          else if (kind === 4) { p++; u32(); }          // tag
          imports.push({ module, name: field, kind: KINDS[kind] ?? "global" });
        }
      }
    } else if (id === 7) {
      for (let n = u32(); n > 0; n--) {
        const field = name();
        const kind = bytes[p++];
        u32();
        exports.push({ name: field, kind: KINDS[kind] ?? "global" });
      }
    }
    p = end;
  }
  return { imports, exports };
}
