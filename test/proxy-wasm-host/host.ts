// ProxyWasmHost: one emulated Envoy process running one module (API.md). Loads and links the
// module like cpp-host (§1), creates one VM per worker with every plugin's root context (§2,
// §3), and offers the driver calls, inspection getters and events of API.md.
import { EventEmitter } from "node:events";
import { EmulatorOptions } from "./options.ts";
import { readModule, type ModuleImport } from "./wasm-module.ts";
import { checkLinkable, type Abi } from "./imports.ts";
import { Vm, type Context } from "./vm.ts";
import { hostFunctions } from "./host-functions.ts";
import { LogSink } from "./log.ts";
import { SharedData, SharedQueues, type QueueOwner } from "./shared-data.ts";
import { MetricStore, MetricType, VmMetrics } from "./metrics.ts";
import { RootContext } from "./root-context.ts";
import type { Plugin } from "./plugin.ts";
import { HttpStream, type StreamEvents } from "./stream.ts";
import { envoyGeneratedResponse } from "./http-call.ts";
import { toBytes } from "./options.ts";
import { has, toHeaderList } from "./pairs.ts";
import type { HostServices } from "./services.ts";
import { RootScope, StreamScope, type PropertyScope } from "./properties.ts";
import {
  Status,
  type Action,
  type Bytes,
  type DownstreamResponse,
  type FailurePolicy,
  type Header,
  type HeadersInput,
  type HttpCall,
  type HttpCallFailure,
  type HttpCallResponse,
  type LocalResponse,
  type LogEntry,
  type LogLevel,
  type RootContextInfo,
  type StreamState,
  type TraceEntry,
  type UpstreamRequest,
} from "./types.ts";

const ABI_MARKERS: Record<string, Abi> = {
  proxy_abi_version_0_1_0: "0.1.0",
  proxy_abi_version_0_2_0: "0.2.0",
  proxy_abi_version_0_2_1: "0.2.1",
};

export interface AddRootContextOptions {
  configuration?: Bytes | object;
  rootId?: string;
  name?: string;
  failurePolicy?: FailurePolicy;
  allowOnHeadersStopIteration?: boolean;
}

export interface StreamInfo {
  handle: number;
  worker: number;
  contextId: number;
  rootContextId: number;
  state: StreamState;
  completed: boolean;
  /** Why Envoy would leave this request hanging (second send_local_response, §8). */
  hung?: string;
  resetReason?: string;
  responseCodeDetails?: string;
}

type Events = {
  httpCall: [call: HttpCall];
  upstream: [stream: number, req: UpstreamRequest];
  localResponse: [stream: number, resp: LocalResponse];
  complete: [stream: number];
};

export class ProxyWasmHost {
  private readonly emitter = new EventEmitter();
  private readonly vms: Vm[] = [];
  private readonly vmMetrics = new WeakMap<Vm, VmMetrics>();
  private readonly plugins: Plugin[] = [];
  private readonly streams = new Map<number, HttpStream>();
  private nextStreamHandle = 1;
  private nextWorker = 0;
  private readonly log: LogSink;
  private readonly sharedData = new SharedData();
  private readonly queues = new SharedQueues();
  private readonly metrics = new MetricStore();
  private readonly traceEntries: TraceEntry[] = [];
  private readonly failures: Array<{ worker: number; message: string }> = [];
  private readonly services: HostServices;
  private readonly streamEvents: StreamEvents = {
    upstream: (st, req) => this.emitter.emit("upstream", st.handle, req),
    localResponse: (st, resp) => this.emitter.emit("localResponse", st.handle, resp),
    completed: (st) => this.emitter.emit("complete", st.handle),
  };
  /** Id of the root context every driver call uses unless told otherwise. */
  readonly rootContextId: number;

  private constructor(
    readonly options: EmulatorOptions,
    private readonly module: WebAssembly.Module,
    private readonly imports: ModuleImport[],
    readonly abi: Abi,
  ) {
    this.log = new LogSink(options.logLevel, options.logEcho, options.maxLogEntries);
    const self = this;
    this.services = {
      options,
      vmId: options.vmId,
      log: this.log,
      defaultLogPrefix: ` ${options.pluginName} ${options.rootId} ${options.vmId}`,
      sharedData: this.sharedData,
      queues: this.queues,
      metricsOf: (vm) => self.vmMetrics.get(vm)!,
      propertyScope: (ctx) => self.propertyScope(ctx),
      rootDone: (root) => self.rootDone(root),
      queueReady: (owner, token) => self.queueReady(owner, token),
      httpCallDispatched: (vm, call) => vm.addAfterCall(() => self.emitter.emit("httpCall", call)),
    };
    for (let w = 0; w < options.workers; w++) this.vms.push(this.newVm(w));
    this.rootContextId = this.addRootContext({
      configuration: options.pluginConfiguration,
      rootId: options.rootId,
      name: options.pluginName,
      failurePolicy: options.failurePolicy,
      allowOnHeadersStopIteration: options.allowOnHeadersStopIteration,
    }).id;
  }

  /**
   * Load the module as Envoy would: ABI marker, exact imports, allocator, start code; then one
   * VM per worker with the plugin's root context (on_context_create, on_vm_start, on_configure).
   * Throws Envoy's load errors ("missing import: env.X", missing ABI, missing malloc, start trap).
   */
  static async create(options: EmulatorOptions): Promise<ProxyWasmHost> {
    const bytes = options.wasmBytes;
    if (!bytes) throw new Error("EmulatorOptions: no module (withWasmFile / withWasmBytes)");
    const { imports, exports } = readModule(bytes);
    const marker = exports.find((e) => e.kind === "function" && e.name in ABI_MARKERS);
    if (!marker) throw new Error("Failed to load Wasm module: Missing or unknown Proxy-Wasm ABI version");
    const abi = ABI_MARKERS[marker.name];
    checkLinkable(imports, abi);
    if (!exports.some((e) => e.kind === "function" && (e.name === "malloc" || e.name === "proxy_on_memory_allocate"))) {
      throw new Error("Wasm module is missing malloc function");
    }
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    return new ProxyWasmHost(options, module, imports, abi);
  }

  private newVm(worker: number): Vm {
    const trace = this.options.trace
      ? (w: number, fn: string, args: number[], result: number | undefined) => this.traceEntries.push({ worker: w, fn, args, result })
      : undefined;
    const vm = new Vm(this.module, this.imports, this.abi, worker, hostFunctions(this.services), trace);
    this.vmMetrics.set(vm, new VmMetrics(this.metrics));
    vm.start();
    return vm;
  }

  // ===== plugins / root contexts ===========================================================

  /** true iff on_vm_start and on_configure returned true for every root context on every VM. */
  get configured(): boolean {
    return this.plugins.every((p) => p.roots.every((r) => r.configured));
  }

  /** A VM trapped (its message: `failMessage`, all of them: `getFailures()`). */
  get failed(): boolean {
    return this.vms.some((vm) => vm.failed) || this.failures.length > 0;
  }

  get failMessage(): string | undefined {
    return this.failures[0]?.message ?? this.vms.find((vm) => vm.failed)?.failMessage;
  }

  getFailures(): Array<{ worker: number; message: string }> {
    const live = this.vms.filter((vm) => vm.failed && !this.failures.some((f) => f.worker === vm.worker && f.message === vm.failMessage));
    return [...this.failures, ...live.map((vm) => ({ worker: vm.worker, message: vm.failMessage ?? "" }))];
  }

  /**
   * Another plugin on the same VMs (e.g. the same WasmPlugin on inbound and outbound listeners):
   * a new root context in every VM. Its id is the same in every VM.
   */
  addRootContext(o: AddRootContextOptions = {}): RootContextInfo {
    const id = Math.max(...this.vms.map((vm) => vm.nextContextId));
    const conf = o.configuration;
    const plugin: Plugin = {
      handle: id,
      name: o.name ?? this.options.pluginName,
      rootId: o.rootId ?? "",
      vmId: this.options.vmId,
      configuration: typeof conf === "object" && !(conf instanceof Uint8Array) ? toBytes(JSON.stringify(conf)) : toBytes(conf),
      failurePolicy: o.failurePolicy ?? this.options.failurePolicy,
      allowOnHeadersStopIteration: o.allowOnHeadersStopIteration ?? this.options.allowOnHeadersStopIteration,
      roots: [],
      logPrefix: ` ${o.name ?? this.options.pluginName} ${o.rootId ?? ""} ${this.options.vmId}`,
    };
    this.plugins.push(plugin);
    for (const vm of this.vms) plugin.roots[vm.worker] = this.createRoot(vm, plugin);
    return { id, configured: plugin.roots.every((r) => r.configured) };
  }

  private createRoot(vm: Vm, plugin: Plugin): RootContext {
    vm.nextContextId = Math.max(vm.nextContextId, plugin.handle);
    const r = new RootContext(vm, vm.allocContextId(), plugin);
    vm.contexts.set(r.id, r);
    r.created = true;
    vm.invoke("on_context_create", r, r.id, 0);
    vm.drain();
    const started = vm.has("on_vm_start") ? vm.invoke("on_vm_start", r, r.id, this.options.vmConfiguration.length) : 1;
    vm.drain();
    r.configuring = true;
    const configured = vm.has("on_configure") ? vm.invoke("on_configure", r, r.id, plugin.configuration.length) : 1;
    r.configuring = false;
    vm.drain();
    r.configured = !vm.failed && started !== undefined && started !== 0 && configured !== undefined && configured !== 0;
    return r;
  }

  /**
   * Plugin removed or replaced (frequent in Istio, §3): root on_done; true → on_delete now,
   * false → on_delete once the module calls proxy_done. Outstanding http calls are cancelled.
   */
  removeRootContext(id: number = this.rootContextId): void {
    const plugin = this.pluginOf(id);
    for (const r of plugin.roots) {
      if (r.deleted || r.vm.failed) continue;
      const done = r.vm.invoke("on_done", r, r.id);
      r.vm.drain();
      if (done === undefined || done !== 0) this.deleteRoot(r);
      else (r as any).pendingDone = true;
    }
  }

  private deleteRoot(r: RootContext): void {
    if (r.deleted) return;
    r.deleted = true;
    r.httpCalls.clear(); // Context::~Context cancels outstanding requests (§7)
    r.vm.invoke("on_delete", r, r.id);
    r.vm.drain();
    r.vm.contexts.delete(r.id);
  }

  private rootDone(r: RootContext): Status {
    if (!(r as any).pendingDone) return Status.NotFound;
    (r as any).pendingDone = false;
    r.vm.addAfterCall(() => this.deleteRoot(r));
    return Status.Ok;
  }

  private pluginByHandle(id: number): Plugin | undefined {
    const ps = this.plugins;
    for (let i = 0; i < ps.length; i++) if (ps[i].handle === id) return ps[i];
    return undefined;
  }

  private pluginOf(id: number): Plugin {
    const p = this.pluginByHandle(id);
    if (!p) throw new Error(`no root context ${id} (known: ${this.plugins.map((x) => x.handle).join(", ")})`);
    return p;
  }

  // ===== streams ===========================================================================

  /**
   * A new HTTP stream on a worker (round-robin unless `worker` is given). Its context id is
   * allocated now; on_context_create runs at the first request-headers event, as in Envoy (§3).
   */
  initializeHttpContext(o?: { rootContextId?: number; worker?: number }): number {
    const plugin = this.pluginOf(o?.rootContextId ?? this.rootContextId);
    const worker = o?.worker ?? this.nextWorker++ % this.vms.length;
    if (worker < 0 || worker >= this.vms.length) throw new Error(`no worker ${worker} (withWorkers(${this.vms.length}))`);
    let vm = this.vms[worker];
    if (vm.failed && plugin.failurePolicy === "FAIL_RELOAD") vm = this.reloadVm(worker);
    const root = plugin.roots[worker];
    if (root.deleted) throw new Error(`root context ${plugin.handle} was removed`);
    if (!root.configured && !vm.failed) {
      throw new Error(`plugin ${plugin.handle} is not configured (on_vm_start/on_configure returned false): Envoy rejects this filter configuration`);
    }
    const handle = this.nextStreamHandle++;
    const s = new HttpStream(handle, vm, root, vm.allocContextId(), this.options, this.streamEvents);
    vm.contexts.set(s.id, s);
    this.streams.set(handle, s);
    return handle;
  }

  /** FAIL_RELOAD (§10): a fresh VM with every plugin's root context (the backoff is not modelled). */
  private reloadVm(worker: number): Vm {
    const old = this.vms[worker];
    this.failures.push({ worker, message: old.failMessage ?? "" });
    const vm = this.newVm(worker);
    this.vms[worker] = vm;
    for (const p of this.plugins) p.roots[worker] = this.createRoot(vm, p);
    return vm;
  }

  private stream(s: number): HttpStream {
    const st = this.streams.get(s);
    if (!st) throw new Error(`no stream ${s}`);
    return st;
  }

  callOnRequestHeaders(s: number, headers: HeadersInput, endOfStream: boolean): Action {
    return this.stream(s).requestHeaders(toHeaderList(headers), endOfStream);
  }
  callOnRequestBody(s: number, chunk: Bytes, endOfStream: boolean): Action {
    return this.stream(s).requestBody(toBytes(chunk), endOfStream);
  }
  callOnRequestTrailers(s: number, trailers: HeadersInput): Action {
    return this.stream(s).requestTrailers(toHeaderList(trailers));
  }
  callOnResponseHeaders(s: number, headers: HeadersInput, endOfStream: boolean): Action {
    return this.stream(s).responseHeaders(toHeaderList(headers), endOfStream);
  }
  callOnResponseBody(s: number, chunk: Bytes, endOfStream: boolean): Action {
    return this.stream(s).responseBody(toBytes(chunk), endOfStream);
  }
  callOnResponseTrailers(s: number, trailers: HeadersInput): Action {
    return this.stream(s).responseTrailers(toHeaderList(trailers));
  }

  /**
   * End of the stream as Envoy's HCM does it: on_log, on_done, on_delete (§3). Envoy ends a
   * stream by itself once the response reached the client (local replies included), so this is
   * a no-op for such streams; call it for streams the driver abandons (client went away).
   */
  completeHttpContext(s: number): void {
    this.stream(s).complete();
  }

  /** Downstream reset (client disconnect) before the stream completed. */
  resetHttpContext(s: number, reason = "downstream_remote_disconnect"): void {
    this.stream(s).reset(reason);
  }

  getCurrentRequestHeaders(s: number): Header[] {
    return (this.stream(s).reqHeaders ?? []).map(([k, v]) => [k, v]);
  }
  getCurrentRequestTrailers(s: number): Header[] {
    return (this.stream(s).reqTrailers ?? []).map(([k, v]) => [k, v]);
  }
  getCurrentResponseHeaders(s: number): Header[] {
    return (this.stream(s).respHeaders ?? []).map(([k, v]) => [k, v]);
  }
  getUpstreamRequest(s: number): UpstreamRequest | undefined {
    return this.stream(s).upstream;
  }
  getLocalResponse(s: number): LocalResponse | undefined {
    return this.stream(s).localResponse;
  }
  /** What the client received (upstream response or local reply), once headers went downstream. */
  getDownstreamResponse(s: number): DownstreamResponse | undefined {
    return this.stream(s).downstream;
  }
  getStreamState(s: number): StreamState {
    return this.stream(s).state();
  }
  getStreamInfo(s: number): StreamInfo {
    const st = this.stream(s);
    return {
      handle: st.handle,
      worker: st.worker,
      contextId: st.id,
      rootContextId: st.root.plugin.handle,
      state: st.state(),
      completed: st.completed,
      hung: st.hung,
      resetReason: st.resetReason,
      responseCodeDetails: st.responseCodeDetails,
    };
  }
  /** The context id the module saw for this stream (ids are per VM, §2). */
  getContextId(s: number): number {
    return this.stream(s).id;
  }
  /** Forget completed streams (long-running drivers and benchmarks). */
  releaseHttpContext(s: number): void {
    const st = this.streams.get(s);
    if (st && !st.completed) st.complete();
    this.streams.delete(s);
  }

  // ===== http calls ========================================================================

  getPendingHttpCalls(): HttpCall[] {
    const out: HttpCall[] = [];
    for (const p of this.plugins) for (const r of p.roots) if (!r.deleted) for (const c of r.httpCalls.values()) out.push(c);
    return out.sort((a, b) => a.worker - b.worker || a.token - b.token);
  }

  private findCall(call: number | HttpCall): { root: RootContext; call: HttpCall } {
    if (typeof call !== "number") {
      // Fast path: the call object names its plugin and worker; only that root can hold it.
      const p = this.pluginByHandle(call.rootContextId);
      const r = p?.roots[call.worker];
      if (r && !r.deleted && r.vm.worker === call.worker && r.httpCalls.get(call.token) === call) return { root: r, call };
    }
    const matches: Array<{ root: RootContext; call: HttpCall }> = [];
    for (const p of this.plugins) {
      for (const r of p.roots) {
        if (r.deleted) continue;
        if (typeof call === "number") {
          const c = r.httpCalls.get(call);
          if (c) matches.push({ root: r, call: c });
        } else if (r.vm.worker === call.worker && r.httpCalls.get(call.token) === call) {
          matches.push({ root: r, call });
        }
      }
    }
    if (matches.length === 0) throw new Error(`no pending http call ${typeof call === "number" ? call : call.token} (answered, cancelled, or never dispatched)`);
    if (matches.length > 1) throw new Error(`http call token ${call} is pending on several VMs (tokens are per VM): pass the HttpCall object`);
    return matches[0];
  }

  /** Deliver a response to proxy_on_http_call_response on the owning root context (§7). */
  respondToHttpCall(call: number | HttpCall, resp: HttpCallResponse): void {
    const { root, call: c } = this.findCall(call);
    const headers = toHeaderList(resp.headers);
    if (!has(headers, ":status")) throw new Error("respondToHttpCall: response headers need :status");
    this.deliverHttpCall(root, c, { headers, body: toBytes(resp.body), trailers: toHeaderList(resp.trailers) });
  }

  /** reset: 0/0/0 and proxy_get_status = 11 "reset"; no-healthy-upstream/timeout: Envoy's own 503/504. */
  failHttpCall(call: number | HttpCall, how: HttpCallFailure): void {
    const { root, call: c } = this.findCall(call);
    if (how === "reset") this.deliverHttpCall(root, c, null);
    else {
      const g = envoyGeneratedResponse(how);
      this.deliverHttpCall(root, c, { headers: g.headers, body: g.body, trailers: [] });
    }
  }

  private deliverHttpCall(root: RootContext, call: HttpCall, resp: { headers: Header[]; body: Uint8Array; trailers: Header[] } | null): void {
    const vm = root.vm;
    if (vm.failed) {
      root.httpCalls.delete(call.token); // a failed VM gets no callbacks
      return;
    }
    if (resp) {
      root.httpCallResponse = resp;
      vm.invoke("on_http_call_response", root, root.id, call.token, resp.headers.length, resp.body.length, resp.trailers.length);
      root.httpCallResponse = null; // readable only inside the callback
    } else {
      root.statusCode = Status.BrokenConnection;
      root.statusMessage = "reset";
      vm.invoke("on_http_call_response", root, root.id, call.token, 0, 0, 0);
      root.statusMessage = ""; // Envoy clears the message (not the code) after the callback
    }
    root.httpCalls.delete(call.token);
    vm.drain();
  }

  // ===== ticks and queues ==================================================================

  /** One timer firing: on_tick on every root with a period set (in every VM, or one worker, §9). */
  tick(o: { rootContextId?: number; worker?: number } = {}): void {
    for (const p of this.plugins) {
      if (o.rootContextId !== undefined && p.handle !== o.rootContextId) continue;
      for (const r of p.roots) {
        if (o.worker !== undefined && r.vm.worker !== o.worker) continue;
        if (r.deleted || r.tickPeriodMs === 0 || r.vm.failed) continue;
        r.vm.invoke("on_tick", r, r.id);
        r.vm.drain();
      }
    }
  }

  getTickPeriod(o: { rootContextId?: number; worker?: number } = {}): number {
    return this.pluginOf(o.rootContextId ?? this.rootContextId).roots[o.worker ?? 0].tickPeriodMs;
  }

  private queueReady(owner: QueueOwner, token: number): void {
    const vm = this.vms[owner.worker];
    const r = vm.contexts.get(owner.rootContextId);
    if (!r || r.kind !== "root") return;
    // Posted to the owner's thread: runs after the current VM call.
    const current = this.vms.find((v) => v.depth > 0) ?? vm;
    current.addAfterCall(() => {
      if (vm.failed || r.deleted) return;
      vm.invoke("on_queue_ready", r, r.id, token);
      vm.drain();
    });
  }

  // ===== inspection ========================================================================

  getLogs(level?: LogLevel): string[] {
    return this.log.messages(level);
  }
  getLogEntries(): LogEntry[] {
    return [...this.log.entries];
  }
  getCounterValue(name: string): number {
    return Number(this.metrics.find(MetricType.Counter, name)?.value ?? 0n);
  }
  getGaugeValue(name: string): number {
    return Number(this.metrics.find(MetricType.Gauge, name)?.value ?? 0n);
  }
  /** Counter or gauge value by name, undefined when never defined. */
  getMetric(name: string): number | undefined {
    const s = this.metrics.find(MetricType.Counter, name) ?? this.metrics.find(MetricType.Gauge, name);
    return s ? Number(s.value) : undefined;
  }
  getHistogramValues(name: string): number[] {
    return (this.metrics.find(MetricType.Histogram, name)?.samples ?? []).map(Number);
  }
  getSharedData(key: string): { value: Uint8Array; cas: number } | undefined {
    const e = this.sharedData.get(this.options.vmId, key);
    return e ? { value: e.value.slice(), cas: e.cas } : undefined;
  }
  /** Seed shared data as another plugin/VM would (same CAS rules). */
  setSharedData(key: string, value: Bytes, cas = 0): Status {
    return this.sharedData.set(this.options.vmId, key, toBytes(value), cas);
  }
  getTrace(): TraceEntry[] {
    return [...this.traceEntries];
  }
  clearTrace(): void {
    this.traceEntries.length = 0;
  }
  /** Linear memory size of a worker's VM (memory.buffer.byteLength). */
  getMemorySize(worker = 0): number {
    return this.vms[worker].memory.buffer.byteLength;
  }
  get workers(): number {
    return this.vms.length;
  }
  /** Context id of a plugin's root context in a VM. */
  getRootContextId(o: { rootContextId?: number; worker?: number } = {}): number {
    return this.pluginOf(o.rootContextId ?? this.rootContextId).roots[o.worker ?? 0].id;
  }

  // ===== events ============================================================================

  on<K extends keyof Events>(event: K, fn: (...args: Events[K]) => void): this {
    this.emitter.on(event, fn as (...a: unknown[]) => void);
    return this;
  }
  off<K extends keyof Events>(event: K, fn: (...args: Events[K]) => void): this {
    this.emitter.off(event, fn as (...a: unknown[]) => void);
    return this;
  }

  // ===== properties scope ==================================================================

  /** Built once per context (get_property is on the filter's hot path). */
  private propertyScope(ctx: Context | null): PropertyScope {
    if (!ctx) return new RootScope(this.options.pluginName, this.options.rootId, this.options.vmId);
    if (!ctx.scopeCache) {
      const p = ctx.root.plugin;
      ctx.scopeCache = ctx.kind === "root" ? new RootScope(p.name, p.rootId, p.vmId) : new StreamScope(p.name, p.rootId, p.vmId, ctx);
    }
    return ctx.scopeCache;
  }
}
