import { EmulatorOptions, ProxyWasmHost } from "/work/main/test/proxy-wasm-host/index.ts";
const CLUSTER = "outbound|8080||mirror-cache.mesh-mirror.svc.cluster.local";
const opts = new EmulatorOptions().withWasmFile("/work/main/build/filter.wasm")
  .withPluginConfiguration(JSON.stringify({ stack: "test", cache_cluster: CLUSTER }))
  .withClusters([CLUSTER]);
const host = await ProxyWasmHost.create(opts);
console.log("configured", host.configured, host.getLogs());
const s = host.initializeHttpContext();
const a = host.callOnRequestHeaders(s, [[":method","GET"],[":path","/x"],[":authority","api.example.com"],[":scheme","http"],["x-request-id","r1"],["x-mirror-stack","mirror"]], true);
console.log("action", a, host.getStreamState(s), host.getCurrentRequestHeaders(s));
const calls = host.getPendingHttpCalls();
console.log(JSON.stringify(calls));
host.respondToHttpCall(calls[0].token, { headers: [[":status","201"],["x-mirror-cache","pass"],["content-length","2"],["connection","close"],["x-a","b"]], body: "ok" });
console.log(host.getStreamState(s), host.getLocalResponse(s));
host.completeHttpContext(s);
const s2 = host.initializeHttpContext();
console.log(host.callOnRequestHeaders(s2, [[":method","GET"],[":path","/x"],[":authority","169.254.169.254:80"]], true), host.getStreamState(s2));
const s3 = host.initializeHttpContext();
host.callOnRequestHeaders(s3, [[":method","GET"],[":path","/x"],[":authority","a"],["x-request-id","r"]], true);
host.failHttpCall(host.getPendingHttpCalls()[0].token, "reset");
console.log(host.getStreamState(s3), host.getUpstreamRequest(s3));
console.log(host.getLogs(), ["tagged","passthrough","dispatched","failed_open","answered"].map(n=>host.getCounterValue("mesh_mirror."+n)), host.failed);
