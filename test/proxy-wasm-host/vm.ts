// One VM instance = one Envoy worker thread's clone of the module (contract.md §2). Owns the
// wasm instance and its memory helpers, the context table (ids never reused, 0 reserved),
// the current/effective context of the running call, the "after VM call" queue Envoy uses to
// defer local replies, continues and http-call callbacks, and the failed state after a trap.
import { HostTrap, buildImportObject, type Abi } from "./imports.ts";
import type { ModuleImport } from "./wasm-module.ts";
import { Status, type Header } from "./types.ts";
import { decodePairsAt, encodePairsInto, pairsSize, readUtf8, utf8Length, writeUtf8 } from "./pairs.ts";
import type { RootContext } from "./root-context.ts";
import type { HttpStream } from "./stream.ts";

export type Context = RootContext | HttpStream;

type Fn = (...args: any[]) => any;
const NO_MEMORY = Buffer.alloc(0);

/** Module exports the host calls (§1, json exports_recognized). Missing ones are skipped (§3). */
export interface Callbacks {
  on_context_create?: Fn;
  on_vm_start?: Fn;
  on_configure?: Fn;
  on_tick?: Fn;
  on_request_headers?: Fn;
  on_request_body?: Fn;
  on_request_trailers?: Fn;
  on_response_headers?: Fn;
  on_response_body?: Fn;
  on_response_trailers?: Fn;
  on_http_call_response?: Fn;
  on_queue_ready?: Fn;
  on_done?: Fn;
  on_log?: Fn;
  on_delete?: Fn;
}

export interface TraceSink {
  (worker: number, fn: string, args: number[], result: number | undefined): void;
}

export class Vm {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  readonly cb: Callbacks = {};
  private readonly mallocFn: Fn;
  private ab: ArrayBuffer;
  private buf: Buffer;
  /** Plain Uint8Array over the same memory (copies made from it are plain Uint8Arrays). */
  private u8: Uint8Array = new Uint8Array(0);

  nextContextId = 1; // 0 is the VM context (cpp-host)
  readonly contexts = new Map<number, Context>();
  /** Context the running callback was invoked on, and the one host calls act on (§7). */
  current: Context | null = null;
  effective: Context | null = null;
  starting = false;
  depth = 0;
  private readonly afterCall: Array<() => void> = [];

  failed = false;
  failMessage: string | undefined;
  /** Envoy's Wasm::stopNextIteration: set by send_local_response, forces the callback's status to stop (§4). */
  stopNextIteration = false;
  /** Whether the last invoke() ended with stopNextIteration set (read by the stream before drain). */
  lastCallStopped = false;
  /** Http-call tokens step by 4 per VM, first is 4 (Envoy's Wasm::nextHttpCallId). */
  private lastHttpToken = 0;

  constructor(
    module: WebAssembly.Module,
    imports: ModuleImport[],
    readonly abi: Abi,
    readonly worker: number,
    hostFunctions: (vm: Vm) => Record<string, Fn>,
    private readonly trace: TraceSink | undefined,
  ) {
    const importObject = buildImportObject(imports, hostFunctions(this), () => this.starting);
    // A wasm start section (AssemblyScript's default for top-level code) runs during
    // instantiation: it is start code too, under the same restricted-call rule (§1.4).
    this.starting = true;
    try {
      this.instance = new WebAssembly.Instance(module, importObject);
    } catch (e) {
      this.markFailed(e);
      throw new Error(`Wasm VM failed to start: ${this.failMessage}`);
    } finally {
      this.starting = false;
    }
    const ex = this.instance.exports as Record<string, any>;
    if (!(ex.memory instanceof WebAssembly.Memory)) throw new Error("Failed to load Wasm module: no exported memory");
    this.memory = ex.memory;
    // cpp-host looks up malloc first and falls back to proxy_on_memory_allocate (§1.3).
    const malloc = typeof ex.malloc === "function" ? ex.malloc : ex.proxy_on_memory_allocate;
    if (typeof malloc !== "function") throw new Error("Wasm module is missing malloc function");
    this.mallocFn = malloc;
    for (const name of Object.keys(ex)) {
      if (name.startsWith("proxy_on_") && typeof ex[name] === "function") {
        (this.cb as Record<string, Fn>)[name.slice(6)] = ex[name];
      }
    }
    this.ab = this.memory.buffer;
    this.buf = Buffer.from(this.ab);
    this.u8 = new Uint8Array(this.ab);
  }


  /** `_initialize` [+ `main(0,0)` / `__main_void`] or `_start`, under the restricted-call rule (§1.4). */
  start(): void {
    const ex = this.instance.exports as Record<string, any>;
    this.starting = true;
    try {
      if (typeof ex._initialize === "function") {
        ex._initialize();
        if (typeof ex.main === "function") ex.main(0, 0);
        else if (typeof ex.__main_void === "function") ex.__main_void();
      } else if (typeof ex._start === "function") {
        ex._start();
      }
    } catch (e) {
      this.markFailed(e);
      throw new Error(`Wasm VM failed to start: ${this.failMessage}`);
    } finally {
      this.starting = false;
    }
  }

  // ---- memory ------------------------------------------------------------------------------

  /** A Buffer view of linear memory, re-created after memory.grow detached the old one. */
  mem(): Buffer {
    // During instantiation (a wasm start section) the exported memory is not reachable yet:
    // every pointer is then out of bounds → InvalidMemoryAccess.
    if (!this.memory) return NO_MEMORY;
    // memory.grow detaches the old ArrayBuffer and views over it report length 0: cheaper to
    // test than reading memory.buffer on every host call.
    if (this.buf.length === 0) {
      this.ab = this.memory.buffer;
      this.buf = Buffer.from(this.ab);
      this.u8 = new Uint8Array(this.ab);
    }
    return this.buf;
  }

  inBounds(ptr: number, size: number): boolean {
    ptr >>>= 0; size >>>= 0;
    return ptr + size <= this.mem().length;
  }

  /** Copy of module memory, or undefined when out of bounds (→ InvalidMemoryAccess). */
  readBytes(ptr: number, size: number): Uint8Array | undefined {
    ptr >>>= 0; size >>>= 0;
    const m = this.mem();
    if (ptr + size > m.length) return undefined;
    return this.u8.slice(ptr, ptr + size); // a plain Uint8Array copy (this.u8 is current after mem())
  }

  readString(ptr: number, size: number): string | undefined {
    ptr >>>= 0; size >>>= 0;
    const m = this.mem();
    if (ptr + size > m.length) return undefined;
    return readUtf8(m, ptr, ptr + size);
  }

  /** Parse a pairs buffer straight from module memory; undefined when out of bounds. */
  readPairs(ptr: number, size: number): Header[] | undefined {
    ptr >>>= 0; size >>>= 0;
    const m = this.mem();
    if (ptr + size > m.length) return undefined;
    return decodePairsAt(m, ptr, size);
  }

  setU32(ptr: number, v: number): boolean {
    ptr >>>= 0;
    const m = this.mem();
    if (ptr + 4 > m.length) return false;
    m[ptr] = v;
    m[ptr + 1] = v >>> 8;
    m[ptr + 2] = v >>> 16;
    m[ptr + 3] = v >>> 24;
    return true;
  }

  setU64(ptr: number, v: bigint): boolean {
    ptr >>>= 0;
    const m = this.mem();
    if (ptr + 8 > m.length) return false;
    m.writeBigUInt64LE(BigInt.asUintN(64, v), ptr);
    return true;
  }

  /** The module's allocator; 0 when it failed. The host never frees (§1.3). */
  malloc(size: number): number {
    return this.mallocFn(size) >>> 0;
  }

  /** Both result slots at once (pointer, size); false when either is out of bounds. */
  private setResult(ptrPtr: number, sizePtr: number, p: number, n: number): boolean {
    // Same order and partial effect as two setU32 calls.
    ptrPtr >>>= 0; sizePtr >>>= 0;
    const m = this.mem();
    if (ptrPtr + 4 > m.length) return false;
    m[ptrPtr] = p; m[ptrPtr + 1] = p >>> 8; m[ptrPtr + 2] = p >>> 16; m[ptrPtr + 3] = p >>> 24;
    if (sizePtr + 4 > m.length) return false;
    m[sizePtr] = n; m[sizePtr + 1] = n >>> 8; m[sizePtr + 2] = n >>> 16; m[sizePtr + 3] = n >>> 24;
    return true;
  }

  /**
   * Hand bytes to the module the cpp-host way: malloc, copy, write pointer and size; an empty
   * value is pointer 0 / size 0 without calling malloc (§1.3).
   */
  writeResult(ptrPtr: number, sizePtr: number, bytes: Uint8Array): Status {
    const n = bytes.length;
    if (n === 0) return this.setResult(ptrPtr, sizePtr, 0, 0) ? Status.Ok : Status.InvalidMemoryAccess;
    const p = this.malloc(n);
    if (!p) return Status.InvalidMemoryAccess;
    const m = this.mem(); // after malloc: memory may have grown
    if (p + n > m.length) return Status.InvalidMemoryAccess;
    if (n <= 16) for (let i = 0; i < n; i++) m[p + i] = bytes[i];
    else m.set(bytes, p);
    return this.setResult(ptrPtr, sizePtr, p, n) ? Status.Ok : Status.InvalidMemoryAccess;
  }

  /** Same, for a string, encoding straight into module memory (hot path for header values). */
  writeStringResult(ptrPtr: number, sizePtr: number, s: string): Status {
    const n = utf8Length(s);
    if (n === 0) return this.setResult(ptrPtr, sizePtr, 0, 0) ? Status.Ok : Status.InvalidMemoryAccess;
    const p = this.malloc(n);
    if (!p) return Status.InvalidMemoryAccess;
    const m = this.mem();
    if (p + n > m.length) return Status.InvalidMemoryAccess;
    writeUtf8(m, s, p);
    return this.setResult(ptrPtr, sizePtr, p, n) ? Status.Ok : Status.InvalidMemoryAccess;
  }

  /** Serialize pairs straight into memory the module allocated: sizes first, one malloc, no intermediate copy. */
  writePairsResult(ptrPtr: number, sizePtr: number, map: readonly Header[]): Status {
    if (map.length === 0) return this.setResult(ptrPtr, sizePtr, 0, 0) ? Status.Ok : Status.InvalidMemoryAccess;
    const size = pairsSize(map);
    const p = this.malloc(size);
    if (!p) return Status.InvalidMemoryAccess;
    const m = this.mem();
    if (p + size > m.length) return Status.InvalidMemoryAccess;
    encodePairsInto(map, m, p);
    return this.setResult(ptrPtr, sizePtr, p, size) ? Status.Ok : Status.InvalidMemoryAccess;
  }

  // ---- contexts ----------------------------------------------------------------------------

  allocContextId(): number {
    return this.nextContextId++;
  }

  nextHttpCallToken(): number {
    return (this.lastHttpToken += 4);
  }

  // ---- calls into the VM -------------------------------------------------------------------

  /**
   * Call a module export on `ctx`. The effective context is reset to `ctx` for the call (cpp-host
   * does the same), a trap marks the VM failed and returns undefined. After-call actions are NOT
   * run here: the caller runs `drain()` once it has acted on the return value, which keeps
   * Envoy's order (the filter manager sees the callback's status before deferred continues).
   */
  invoke(name: keyof Callbacks, ctx: Context, a?: number, b?: number, c?: number, d?: number, e?: number): number | undefined {
    const fn = this.cb[name];
    if (!fn || this.failed) return undefined;
    const prevCur = this.current, prevEff = this.effective;
    this.current = ctx;
    this.effective = ctx;
    this.depth++;
    this.stopNextIteration = false;
    let r: number | undefined;
    try {
      r = fn(a, b, c, d, e);
    } catch (err) {
      this.markFailed(err);
      r = undefined;
    } finally {
      this.current = prevCur;
      this.effective = prevEff;
      this.depth--;
      this.lastCallStopped = this.stopNextIteration;
      this.stopNextIteration = false;
    }
    if (this.trace) this.trace(this.worker, `proxy_${name}`, [a, b, c, d, e].filter((x) => x !== undefined) as number[], typeof r === "number" ? r : undefined);
    return typeof r === "number" ? r : r === undefined ? undefined : Number(r);
  }

  has(name: keyof Callbacks): boolean {
    return this.cb[name] !== undefined;
  }

  addAfterCall(f: () => void): void {
    this.afterCall.push(f);
  }

  /** Run deferred actions once no VM call is on the stack (Envoy's DeferAfterCallActions). */
  drain(): void {
    if (this.depth > 0) return;
    // Actions may queue more actions and drain re-entrantly: always take the oldest one.
    const q = this.afterCall;
    while (q.length > 0) q.shift()!();
  }

  private markFailed(err: unknown): void {
    this.failed = true;
    this.failMessage = err instanceof Error ? `${err.name === "Error" ? "" : err.name + ": "}${err.message}` : String(err);
    this.afterCall.length = 0;
    // A JS error that is neither a wasm trap nor a deliberate host trap is an emulator bug: say so.
    if (!(err instanceof WebAssembly.RuntimeError) && !(err instanceof HostTrap) && !(err instanceof RangeError)) {
      this.failMessage = `emulator error inside a host call: ${(err as Error)?.stack ?? err}`;
    }
  }
}
