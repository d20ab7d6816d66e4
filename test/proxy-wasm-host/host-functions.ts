// Implementations of the env.proxy_* and WASI host functions for one VM, following cpp-host's
// exports.cc + Envoy's Context (contract.md §4–§9). Each acts on the VM's effective context.
import { randomFillSync } from "node:crypto";
import type { Vm, Context } from "./vm.ts";
import type { HostServices } from "./services.ts";
import { getFirst, headerByteSize, removeAll, replaceValue } from "./pairs.ts";
import { getProperty, SERIALIZATION_FAILURE } from "./properties.ts";
import { dispatchHttpCall } from "./http-call.ts";
import { BufferType, LogLevel, Status, type Header } from "./types.ts";
import type { HttpStream } from "./stream.ts";
import type { RootContext } from "./root-context.ts";
import type { VmMetrics } from "./metrics.ts";

const MAX_MAP_TYPE = 7;
const NO_PAIRS: Header[] = [];
const NO_BYTES = new Uint8Array(0);
const MAX_BUFFER_TYPE = 8;
const WASI_BADF = 8, WASI_INVAL = 28, WASI_NOENT = 44, WASI_NOSYS = 52, WASI_NOTSUP = 58, WASI_FAULT = 21;

/** Which buffer Envoy's getBuffer resolves to; "const" buffers cannot be written. */
const enum Buf {
  None,
  ReqHeld,
  ReqBody,
  RespHeld,
  RespBody,
  Const,
}

export function hostFunctions(services: HostServices): (vm: Vm) => Record<string, (...a: any[]) => any> {
  return (vm: Vm) => {
    const ctx = (): Context | null => vm.effective;
    const stream = (): HttpStream | null => {
      const c = vm.effective;
      return c && c.kind === "stream" ? c : null;
    };
    const rootOf = (): RootContext | null => vm.effective?.root ?? null;
    // The VM's metric table, looked up once (set by the host right after the VM is created).
    let vmMetrics: VmMetrics | undefined;
    const metrics = (): VmMetrics => (vmMetrics ??= services.metricsOf(vm));

    function constMap(type: number): Header[] | null {
      const c = ctx();
      if (!c) return null;
      if (c.kind === "stream") return c.constMap(type);
      if (type === 6) return c.httpCallResponse?.headers ?? null;
      if (type === 7) return c.httpCallResponse?.trailers ?? null;
      return null;
    }
    function mutMap(type: number): Header[] | null {
      const s = stream();
      return s ? s.map(type) : null;
    }

    // Resolved without allocating: `bufKind` says which one, `constBytes` holds a read-only one.
    let constBytes: Uint8Array = NO_BYTES;
    function bufferKind(type: number): Buf {
      const c = ctx();
      if (!c) return Buf.None;
      switch (type) {
        case BufferType.HttpRequestBody:
          // While buffering, Envoy hands out the decoding buffer (everything held so far).
          if (c.kind !== "stream") return Buf.None;
          return c.bufferingReq ? Buf.ReqHeld : c.reqBody ? Buf.ReqBody : Buf.None;
        case BufferType.HttpResponseBody:
          if (c.kind !== "stream") return Buf.None;
          return c.bufferingResp ? Buf.RespHeld : c.respBody ? Buf.RespBody : Buf.None;
        case BufferType.HttpCallResponseBody: {
          const r = c.root.httpCallResponse;
          if (!r) return Buf.None;
          constBytes = r.body;
          return Buf.Const;
        }
        case BufferType.VmConfiguration:
          constBytes = services.options.vmConfiguration;
          return Buf.Const;
        case BufferType.PluginConfiguration:
          // Only while on_configure runs (Envoy's temp_plugin_).
          if (c.kind !== "root" || !c.configuring) return Buf.None;
          constBytes = c.plugin.configuration;
          return Buf.Const;
        case BufferType.CallData:
          constBytes = NO_BYTES;
          return Buf.Const;
        default:
          return Buf.None;
      }
    }
    function bufferBytes(kind: Buf): Uint8Array {
      const s = vm.effective as HttpStream;
      switch (kind) {
        case Buf.ReqHeld: return s.reqHeld;
        case Buf.ReqBody: return s.reqBody!;
        case Buf.RespHeld: return s.respHeld;
        case Buf.RespBody: return s.respBody!;
        default: return constBytes;
      }
    }
    function setBufferBytes(kind: Buf, b: Uint8Array): void {
      const s = vm.effective as HttpStream;
      if (kind === Buf.ReqHeld) s.reqHeld = b;
      else if (kind === Buf.ReqBody) s.reqBody = b;
      else if (kind === Buf.RespHeld) s.respHeld = b;
      else if (kind === Buf.RespBody) s.respBody = b;
    }

    function logPrefix(): string {
      const r = rootOf();
      return r ? r.plugin.logPrefix : services.defaultLogPrefix;
    }

    const f: Record<string, (...a: any[]) => any> = {
      // ---- logging, status, time ------------------------------------------------------------
      proxy_log(level: number, ptr: number, size: number): number {
        if (level >>> 0 > LogLevel.Critical) return Status.BadArgument;
        const msg = vm.readString(ptr, size);
        if (msg === undefined) return Status.InvalidMemoryAccess;
        services.log.write(level, msg, vm.worker, logPrefix());
        return Status.Ok;
      },
      proxy_get_log_level(levelPtr: number): number {
        return vm.setU32(levelPtr, services.log.level) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_get_status(codePtr: number, msgPtrPtr: number, msgSizePtr: number): number {
        const r = rootOf();
        if (!vm.setU32(codePtr, r?.statusCode ?? 0)) return Status.InvalidMemoryAccess;
        return vm.writeStringResult(msgPtrPtr, msgSizePtr, r?.statusMessage ?? "");
      },
      proxy_get_current_time_nanoseconds(resultPtr: number): number {
        return vm.setU64(resultPtr, BigInt(Date.now()) * 1_000_000n) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_set_tick_period_milliseconds(ms: number): number {
        const r = rootOf();
        if (r) r.tickPeriodMs = ms >>> 0;
        return Status.Ok;
      },

      // ---- properties -----------------------------------------------------------------------
      proxy_get_property(pathPtr: number, pathSize: number, valuePtrPtr: number, valueSizePtr: number): number {
        const path = vm.readString(pathPtr, pathSize);
        if (path === undefined) return Status.InvalidMemoryAccess;
        const v = getProperty(path, services.propertyScope(vm.effective), services.options);
        if (v === undefined) return Status.NotFound;
        if (v === SERIALIZATION_FAILURE) return Status.SerializationFailure;
        return vm.writeResult(valuePtrPtr, valueSizePtr, v);
      },
      proxy_set_property(pathPtr: number, pathSize: number, valuePtr: number, valueSize: number): number {
        const path = vm.readString(pathPtr, pathSize);
        const value = vm.readBytes(valuePtr, valueSize);
        if (path === undefined || value === undefined) return Status.InvalidMemoryAccess;
        const s = stream();
        if (!s) return Status.NotFound; // no stream info on a root context
        s.filterState.set(path, value);
        return Status.Ok;
      },

      // ---- header maps ----------------------------------------------------------------------
      proxy_get_header_map_value(type: number, keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        const key = vm.readString(keyPtr, keySize);
        if (key === undefined) return Status.InvalidMemoryAccess;
        const map = constMap(type);
        if (!map) {
          const s = stream();
          return s && s.accessLog ? Status.NotFound : Status.BadArgument;
        }
        const v = getFirst(map, key.toLowerCase()); // only the first of repeated values (§5)
        if (v === undefined) return Status.NotFound;
        return vm.writeStringResult(valuePtrPtr, valueSizePtr, v);
      },
      proxy_get_header_map_pairs(type: number, ptrPtr: number, sizePtr: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        return vm.writePairsResult(ptrPtr, sizePtr, constMap(type) ?? NO_PAIRS);
      },
      proxy_set_header_map_pairs(type: number, ptr: number, size: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        const pairs = vm.readPairs(ptr, size);
        if (!pairs) return Status.InvalidMemoryAccess;
        const map = mutMap(type);
        if (!map) return Status.BadArgument;
        map.length = 0;
        for (const [k, v] of pairs) map.push([k.toLowerCase(), v]);
        return Status.Ok;
      },
      proxy_get_header_map_size(type: number, sizePtr: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        const map = mutMap(type); // Envoy uses the mutable map here: BadArgument in on_log too
        if (!map) return Status.BadArgument;
        return vm.setU32(sizePtr, headerByteSize(map)) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_add_header_map_value(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        const key = vm.readString(keyPtr, keySize);
        const value = vm.readString(valuePtr, valueSize);
        if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
        const map = mutMap(type);
        if (!map) return Status.BadArgument;
        map.push([key.toLowerCase(), value]);
        return Status.Ok;
      },
      proxy_replace_header_map_value(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        const key = vm.readString(keyPtr, keySize);
        const value = vm.readString(valuePtr, valueSize);
        if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
        const map = mutMap(type);
        if (!map) return Status.BadArgument;
        replaceValue(map, key.toLowerCase(), value);
        return Status.Ok;
      },
      proxy_remove_header_map_value(type: number, keyPtr: number, keySize: number): number {
        if (type >>> 0 > MAX_MAP_TYPE) return Status.BadArgument;
        const key = vm.readString(keyPtr, keySize);
        if (key === undefined) return Status.InvalidMemoryAccess;
        const map = mutMap(type);
        if (!map) return Status.BadArgument;
        removeAll(map, key.toLowerCase());
        return Status.Ok;
      },

      // ---- buffers --------------------------------------------------------------------------
      proxy_get_buffer_status(type: number, lengthPtr: number, flagsPtr: number): number {
        const k = bufferKind(type >>> 0);
        if (k === Buf.None) return Status.NotFound;
        return vm.setU32(lengthPtr, bufferBytes(k).length) && vm.setU32(flagsPtr, 0) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_get_buffer_bytes(type: number, start: number, length: number, ptrPtr: number, sizePtr: number): number {
        if (type >>> 0 > MAX_BUFFER_TYPE) return Status.BadArgument;
        const k = bufferKind(type >>> 0);
        if (k === Buf.None) return Status.NotFound;
        const bytes = bufferBytes(k);
        start >>>= 0; length >>>= 0;
        if (start > bytes.length) return Status.Ok; // nothing to copy, nothing written
        if (start + length > bytes.length) length = bytes.length - start;
        if (length === 0) return Status.Ok; // §11: an empty body writes nothing
        return vm.writeResult(ptrPtr, sizePtr, start === 0 && length === bytes.length ? bytes : bytes.subarray(start, start + length));
      },
      proxy_set_buffer_bytes(type: number, start: number, length: number, dataPtr: number, dataSize: number): number {
        if (type >>> 0 > MAX_BUFFER_TYPE) return Status.BadArgument;
        const k = bufferKind(type >>> 0);
        if (k === Buf.None) return Status.NotFound;
        const data = vm.readBytes(dataPtr, dataSize);
        if (!data) return Status.InvalidMemoryAccess;
        if (k === Buf.Const) return Status.BadArgument; // immutable (http-call response, configurations)
        start >>>= 0; length >>>= 0;
        const cur = bufferBytes(k);
        const b = { set: (x: Uint8Array) => setBufferBytes(k, x) };
        // Envoy supports only replace-from-the-front and append (§5).
        if (start === 0) {
          const rest = cur.subarray(Math.min(length, cur.length));
          const out = new Uint8Array(data.length + rest.length);
          out.set(data);
          out.set(rest, data.length);
          b.set(out);
          return Status.Ok;
        }
        if (start >= cur.length) {
          const out = new Uint8Array(cur.length + data.length);
          out.set(cur);
          out.set(data, cur.length);
          b.set(out);
          return Status.Ok;
        }
        return Status.BadArgument;
      },

      // ---- stream control -------------------------------------------------------------------
      proxy_send_local_response(statusCode: number, detailsPtr: number, detailsSize: number, bodyPtr: number, bodySize: number, headersPtr: number, headersSize: number, grpcStatus: number): number {
        const details = vm.readString(detailsPtr, detailsSize);
        const body = vm.readBytes(bodyPtr, bodySize);
        const hdrs = vm.readPairs(headersPtr, headersSize);
        if (details === undefined || !body || !hdrs) return Status.InvalidMemoryAccess;
        const s = stream();
        if (s) s.queueLocalReply(statusCode >>> 0, details, body, hdrs, grpcStatus | 0);
        return Status.Ok; // Envoy always answers Ok (§8)
      },
      proxy_continue_stream(type: number): number {
        type >>>= 0;
        if (type === 3) return Status.Unimplemented;
        if (type > 3) return Status.BadArgument;
        const s = stream();
        if (s && type <= 1) s.continueStream(type);
        return Status.Ok;
      },
      proxy_close_stream(type: number): number {
        type >>>= 0;
        if (type > 3) return Status.BadArgument;
        const s = stream();
        if (s && type <= 1) s.closeStream();
        return Status.Ok;
      },
      proxy_set_effective_context(id: number): number {
        const c = vm.contexts.get(id >>> 0);
        if (!c) return Status.BadArgument;
        vm.effective = c;
        return Status.Ok;
      },
      proxy_done(): number {
        const r = rootOf();
        return r ? services.rootDone(r) : Status.NotFound;
      },

      // ---- http calls -----------------------------------------------------------------------
      proxy_http_call(upPtr: number, upSize: number, hPtr: number, hSize: number, bPtr: number, bSize: number, tPtr: number, tSize: number, timeout: number, tokenPtr: number): number {
        const cluster = vm.readString(upPtr, upSize);
        const h = vm.readPairs(hPtr, hSize);
        const body = vm.readBytes(bPtr, bSize);
        const t = vm.readPairs(tPtr, tSize);
        if (cluster === undefined || !h || !body || !t) return Status.InvalidMemoryAccess;
        const r = rootOf();
        if (!r) return Status.BadArgument;
        const res = dispatchHttpCall(vm, r, services, cluster, h, body, t, timeout | 0);
        if (res.status !== Status.Ok) return res.status;
        return vm.setU32(tokenPtr, res.token!) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_grpc_call: () => Status.Unimplemented,
      proxy_grpc_stream: () => Status.Unimplemented,
      proxy_grpc_send: () => Status.Unimplemented,
      proxy_grpc_close: () => Status.Unimplemented,
      proxy_grpc_cancel: () => Status.Unimplemented,
      envoy_resolve_dns: () => Status.Unimplemented,
      proxy_call_foreign_function: () => Status.NotFound,

      // ---- shared data and queues -----------------------------------------------------------
      proxy_get_shared_data(keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number, casPtr: number): number {
        const key = vm.readString(keyPtr, keySize);
        if (key === undefined) return Status.InvalidMemoryAccess;
        const e = services.sharedData.get(services.vmId, key);
        if (!e) return Status.NotFound;
        const st = vm.writeResult(valuePtrPtr, valueSizePtr, e.value);
        if (st !== Status.Ok) return st;
        return vm.setU32(casPtr, e.cas) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_set_shared_data(keyPtr: number, keySize: number, valuePtr: number, valueSize: number, cas: number): number {
        const key = vm.readString(keyPtr, keySize);
        const value = vm.readBytes(valuePtr, valueSize);
        if (key === undefined || !value) return Status.InvalidMemoryAccess;
        return services.sharedData.set(services.vmId, key, value, cas >>> 0);
      },
      proxy_register_shared_queue(namePtr: number, nameSize: number, tokenPtr: number): number {
        const name = vm.readString(namePtr, nameSize);
        if (name === undefined) return Status.InvalidMemoryAccess;
        const r = rootOf();
        if (!r) return Status.BadArgument;
        const token = services.queues.register(services.vmId, name, { worker: vm.worker, rootContextId: r.id });
        return vm.setU32(tokenPtr, token) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_resolve_shared_queue(vmIdPtr: number, vmIdSize: number, namePtr: number, nameSize: number, tokenPtr: number): number {
        const vmId = vm.readString(vmIdPtr, vmIdSize);
        const name = vm.readString(namePtr, nameSize);
        if (vmId === undefined || name === undefined) return Status.InvalidMemoryAccess;
        const token = services.queues.resolve(vmId, name);
        if (token === undefined) return Status.NotFound;
        return vm.setU32(tokenPtr, token) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_enqueue_shared_queue(token: number, valuePtr: number, valueSize: number): number {
        const value = vm.readBytes(valuePtr, valueSize);
        if (!value) return Status.InvalidMemoryAccess;
        const q = services.queues.enqueue(token >>> 0, value);
        if (!q) return Status.NotFound;
        services.queueReady(q.owner, token >>> 0);
        return Status.Ok;
      },
      proxy_dequeue_shared_queue(token: number, ptrPtr: number, sizePtr: number): number {
        const r = services.queues.dequeue(token >>> 0);
        if (r.status !== Status.Ok) return r.status;
        return vm.writeResult(ptrPtr, sizePtr, r.value!);
      },

      // ---- metrics --------------------------------------------------------------------------
      proxy_define_metric(type: number, namePtr: number, nameSize: number, idPtr: number): number {
        const name = vm.readString(namePtr, nameSize);
        if (name === undefined) return Status.InvalidMemoryAccess;
        const r = metrics().define(type >>> 0, name);
        if (r.status !== Status.Ok) return r.status;
        return vm.setU32(idPtr, r.id!) ? Status.Ok : Status.InvalidMemoryAccess;
      },
      proxy_increment_metric(id: number, delta: bigint): number {
        return metrics().increment(id >>> 0, typeof delta === "bigint" ? delta : BigInt(delta));
      },
      proxy_record_metric(id: number, value: bigint): number {
        return metrics().record(id >>> 0, BigInt.asUintN(64, BigInt(value)));
      },
      proxy_get_metric(id: number, resultPtr: number): number {
        const r = metrics().get(id >>> 0);
        if (r.status !== Status.Ok) return r.status;
        return vm.setU64(resultPtr, r.value!) ? Status.Ok : Status.InvalidMemoryAccess;
      },

      // ---- misc env ---------------------------------------------------------------------------
      pthread_equal: (a: number, b: number) => (a === b ? 1 : 0),
      emscripten_notify_memory_growth: () => undefined,

      // ---- WASI (json "behaviour" notes) ------------------------------------------------------
      fd_write(fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
        if (fd !== 1 && fd !== 2) return WASI_BADF;
        const m = vm.mem();
        let text = "";
        let n = 0;
        for (let i = 0; i < iovsLen; i++) {
          const base = iovs + i * 8;
          if (base + 8 > m.length) return WASI_FAULT;
          const p = m.readUInt32LE(base), l = m.readUInt32LE(base + 4);
          if (p + l > m.length) return WASI_FAULT;
          text += m.toString("utf8", p, p + l);
          n += l;
        }
        if (!vm.setU32(nwrittenPtr, n)) return WASI_FAULT;
        if (text.endsWith("\n")) text = text.slice(0, -1);
        services.log.write(fd === 1 ? LogLevel.Info : LogLevel.Error, text, vm.worker, logPrefix());
        return 0;
      },
      fd_read: () => WASI_NOSYS,
      fd_seek: () => 0,
      fd_close: () => 0,
      fd_fdstat_get(fd: number, statPtr: number): number {
        if (fd !== 1 && fd !== 2) return WASI_BADF;
        const m = vm.mem();
        if (statPtr + 24 > m.length) return WASI_FAULT;
        m.fill(0, statPtr, statPtr + 24);
        m.writeBigUInt64LE(64n, statPtr + 8); // rights_base = FD_WRITE
        return 0;
      },
      environ_get(environPtr: number, bufPtr: number): number {
        const m = vm.mem();
        for (const [k, v] of Object.entries(services.options.environment)) {
          m.writeUInt32LE(bufPtr, environPtr);
          environPtr += 4;
          bufPtr += m.write(`${k}=${v}\0`, bufPtr, "utf8");
        }
        return 0;
      },
      environ_sizes_get(countPtr: number, sizePtr: number): number {
        const env = Object.entries(services.options.environment);
        const size = env.reduce((n, [k, v]) => n + Buffer.byteLength(`${k}=${v}\0`), 0);
        return vm.setU32(countPtr, env.length) && vm.setU32(sizePtr, size) ? 0 : WASI_FAULT;
      },
      args_get: () => 0,
      args_sizes_get: (a: number, b: number) => (vm.setU32(a, 0) && vm.setU32(b, 0) ? 0 : WASI_FAULT),
      clock_time_get(id: number, _precision: bigint, resultPtr: number): number {
        if (id === 0) return vm.setU64(resultPtr, BigInt(Date.now()) * 1_000_000n) ? 0 : WASI_FAULT;
        if (id === 1) return vm.setU64(resultPtr, process.hrtime.bigint()) ? 0 : WASI_FAULT;
        return WASI_NOTSUP;
      },
      clock_res_get(id: number, resultPtr: number): number {
        if (id !== 0 && id !== 1) return WASI_NOTSUP;
        return vm.setU64(resultPtr, 1n) ? 0 : WASI_FAULT;
      },
      random_get(ptr: number, len: number): number {
        if (len > 65536) return WASI_INVAL;
        const m = vm.mem();
        if (ptr + len > m.length) return WASI_FAULT;
        randomFillSync(m, ptr, len);
        return 0;
      },
      proc_exit: () => undefined, // Envoy logs and returns; the module keeps running (§10)
      path_open: () => WASI_NOENT,
      fd_prestat_get: () => WASI_BADF,
      fd_prestat_dir_name: () => WASI_NOSYS,
      sched_yield: () => 0,
      poll_oneoff: (_in: number, _out: number, _n: number, neventsPtr: number) => (vm.setU32(neventsPtr, 0) ? 0 : WASI_FAULT),
      path_filestat_get: () => WASI_NOTSUP,
      fd_filestat_get: () => WASI_BADF,
    };
    // The remaining WASI file/socket stubs added in cpp-host #533 answer "not supported".
    for (const n of ["fd_fdstat_set_flags", "fd_advise", "fd_allocate", "fd_datasync", "fd_fdstat_set_rights", "fd_filestat_set_size", "fd_filestat_set_times", "fd_pread", "fd_pwrite", "fd_readdir", "fd_renumber", "fd_sync", "fd_tell", "path_create_directory", "path_filestat_set_times", "path_link", "path_readlink", "path_remove_directory", "path_rename", "path_symlink", "path_unlink_file", "sock_accept", "sock_recv", "sock_send", "sock_shutdown"]) {
      f[n] ??= () => WASI_NOTSUP;
    }
    return f;
  };
}
