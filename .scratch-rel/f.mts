import { buildConnector } from "/work/main/node_modules/undici/index.js";
import { startService } from "/work/main/test/service/support/harness.ts";
import { startFaultUpstream } from "/work/main/test/reliability/support.ts";
const up = await startFaultUpstream();
const real = buildConnector({ timeout: 2000 });
const svc = await startService({ MIRROR_CACHE_WAIT_MS: "0" }, { resolver: async () => [{ address: "127.0.0.1", family: 4 }], connector: ((o: any, cb: any) => real({ ...o, hostname: "127.0.0.1", port: String(up.port) }, cb)) as any });
for (const host of ["a.aa", up.authority, "a.aa:80"]) {
  const r = await svc.app.inject({ method: "GET", url: "/ok", headers: { host, "x-mirror-stack": "test", "x-request-id": "r" + host } });
  console.log(host, r.statusCode, r.headers["x-mirror-cache"], r.body.slice(0, 200));
}
console.log(up.seen.length);
await svc.close(); await up.close();
