import { EmulatorOptions, LogLevel, ProxyWasmHost } from "../test/proxy-wasm-host/index.ts";
const CACHE = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";
const h = await ProxyWasmHost.create(new EmulatorOptions().withWasmFile("build/filter.wasm").withPluginConfiguration(JSON.stringify({ stack: "test", cache_cluster: CACHE })).withClusters([CACHE]).withLogLevel(LogLevel.Warn));
let call: any; h.on("httpCall", (c) => (call = c));
const t0 = performance.now();
for (let i = 0; i < 20000; i++) {
  const s = h.initializeHttpContext();
  h.callOnRequestHeaders(s, [[":method","GET"],[":path","/x"],[":authority","api.example.com"],["x-request-id","r"+i]], true);
  h.respondToHttpCall(call, { headers: [[":status","200"],["x-mirror-cache","hit"]], body: "{}" });
  h.releaseHttpContext(s);
}
console.log((performance.now()-t0)/20000*1000, "ns/op");
