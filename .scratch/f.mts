import { EmulatorOptions, ProxyWasmHost } from "../test/proxy-wasm-host/index.ts";
const CACHE = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";
const host = await ProxyWasmHost.create(new EmulatorOptions().withWasmFile("build/filter.wasm")
  .withPluginConfiguration(JSON.stringify({ stack: "test", cache_cluster: CACHE })).withClusters([CACHE]).withTrace());
console.log("configured", host.configured, host.getLogs());
for (const auth of ["169.254.169.254", "api.example.com"]) {
  const s = host.initializeHttpContext();
  const a = host.callOnRequestHeaders(s, [[":method","GET"],[":path","/x"],[":authority",auth],[":scheme","http"],["x-request-id","r1"]], true);
  console.log(auth, "action", a, host.getStreamState(s), host.getPendingHttpCalls().map(c=>[c.cluster, c.headers]));
  const calls = host.getPendingHttpCalls();
  if (calls.length) host.respondToHttpCall(calls[0], { headers: { ":status": "200", "x-mirror-cache": "hit", "content-type": "application/json" }, body: "{}" });
  else host.callOnResponseHeaders(s, [[":status","200"]], true);
  console.log(host.getStreamState(s), host.getLocalResponse(s), host.getDownstreamResponse(s));
}
