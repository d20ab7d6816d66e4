import { ProxyWasmHost } from "/work/main/test/proxy-wasm-host/index.ts";
import { config, options } from "/work/main/test/filter/helpers.ts";
const h = await ProxyWasmHost.create(options(config("mirror")));
const s = h.initializeHttpContext();
const a = h.callOnRequestHeaders(s, [[":method", "GET"], [":path", "/x"], [":authority", "api.example.com"], [":scheme", "http"], ["x-request-id", "big"], ["x-big", "b".repeat(1 << 20)]], true);
console.log("action", a, h.getStreamState(s), h.failed, h.getPendingHttpCalls().length, h.getLocalResponse(s), h.getLogs().slice(-5));
const s2 = h.initializeHttpContext();
const a2 = h.callOnRequestHeaders(s2, [[":method", "GET"], [":path", "/x"], [":authority", "api.example.com"], [":scheme", "http"], ["x-request-id", "big"], ["x-big", "b".repeat(50000)]], true);
console.log("action", a2, h.getStreamState(s2), h.failed, h.getPendingHttpCalls().length, h.getLogs().slice(-3));
