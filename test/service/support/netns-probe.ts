// Run inside `unshare -n` (only `lo` up) by egress-denies-metadata-and-loopback.test.ts. Starts a
// loopback upstream and two services — one with the default egress policy, one with it lifted
// (`MIRROR_CACHE_EGRESS_ALLOW=0.0.0.0/0,::/0`) — and prints one JSON line of what happened.
import { rid, send, startService, startUpstream } from "./harness.ts";

const up = await startUpstream((_q, res) => res.end("ok"));
const on = await startService();
const lifted = await startService({ MIRROR_CACHE_EGRESS_ALLOW: "0.0.0.0/0,::/0", MIRROR_CACHE_CONNECT_TIMEOUT_MS: "3000" });
const a = await send(on.port, { host: up.authority, stack: "test", rid: rid() });
const b = await send(on.port, { host: "169.254.169.254", stack: "test", rid: rid(), path: "/latest/meta-data/" });
const c = await send(lifted.port, { host: "169.254.169.254", stack: "test", rid: rid(), path: "/latest/meta-data/" });
const cj = c.json();
process.stdout.write(
  JSON.stringify({
    loopbackUpstream: a.status,
    policyOn: { status: b.status, cache: b.headers["x-mirror-cache"], code: b.json().code },
    policyLifted: { status: c.status, code: cj.code, message: cj.message },
  }) + "\n",
);
await on.close();
await lifted.close();
await up.close();
process.exit(0);
