// Run by security-ssrf-metadata-and-loopback.test.ts inside `unshare -n -m` (a network namespace
// with only `lo`, the metadata addresses added to it, and a private /etc/hosts bind-mounted over
// the real one). Nothing can leave the namespace. Honeypots listen on every metadata address and on
// another loopback address; the REAL mirror-cache (`service/server.ts`, real DNS through
// /etc/hosts, real egress policy) is started twice — default policy, then the policy lifted — and
// gets test and mirror calls whose Host names resolve to the honeypots. Prints one JSON line.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

const HOSTS_FILE = process.env.PROBE_HOSTS_FILE!;
const ROOT = process.env.PROBE_ROOT!;
const HONEYPOTS = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "127.0.0.2"];
const NAMES: Record<string, string> = {
  "imds.evil.test": "169.254.169.254",
  "ecs.evil.test": "169.254.170.2",
  "aliyun.evil.test": "100.100.100.200",
  "imds6.evil.test": "fd00:ec2::254",
  "mapped.evil.test": "::ffff:169.254.169.254",
  "loop2.evil.test": "127.0.0.2",
  "rebind.evil.test": "127.0.0.1",
  "legit.test": "127.0.0.1",
};
function writeHosts(names: Record<string, string>): void {
  writeFileSync(HOSTS_FILE, ["127.0.0.1 localhost", "::1 localhost ip6-localhost", ...Object.entries(names).map(([n, a]) => `${a} ${n}`)].join("\n") + "\n");
}
writeHosts(NAMES);

const hits: Record<string, number> = {};
const servers: Server[] = [];
for (const addr of HONEYPOTS) {
  const s = createServer((_q, res) => res.end(`honeypot ${addr}`));
  s.on("connection", () => (hits[addr] = (hits[addr] ?? 0) + 1));
  await new Promise<void>((r) => s.listen(80, addr, r));
  servers.push(s);
}
const legit = createServer((_q, res) => {
  res.setHeader("connection", "close"); // every call opens (and re-resolves) a new connection
  res.end("legit upstream");
});
await new Promise<void>((r) => legit.listen(0, "127.0.0.1", r));
servers.push(legit);
const legitPort = (legit.address() as AddressInfo).port;

function call(port: number, host: string, stack: string, rid: string): Promise<{ status: number; cache?: string; code?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/latest/meta-data/iam/security-credentials/", headers: { host, "x-mirror-stack": stack, "x-request-id": rid }, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        let code: string | undefined;
        try {
          code = JSON.parse(body).code;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode!, cache: res.headers["x-mirror-cache"] as string | undefined, code, body });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

async function withService<T>(port: number, env: Record<string, string>, f: () => Promise<T>): Promise<T & { exit: number | null }> {
  const child = spawn(process.execPath, ["--import", "tsx", `${ROOT}/service/server.ts`], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "error", MIRROR_CACHE_CONNECT_TIMEOUT_MS: "1500", ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((r) => {
      const q = request({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => (res.resume(), r(res.statusCode === 200)));
      q.on("error", () => r(false));
      q.end();
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const out = await f();
    child.kill("SIGTERM");
    return { ...out, exit: await exited };
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
}

const targets = ["imds.evil.test", "ecs.evil.test", "aliyun.evil.test", "imds6.evil.test", "mapped.evil.test", "loop2.evil.test"].map((n) => `${n}:80`);
let n = 0;
const rid = () => `ssrf-${process.pid}-${++n}`;

const policyOn = await withService(18080, { MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32" }, async () => {
  const denied: Record<string, { test: object; mirror: object }> = {};
  for (const host of targets) {
    const id = rid();
    const t = await call(18080, host, "test", id);
    const m = await call(18080, host, "mirror", id);
    denied[host] = { test: { status: t.status, cache: t.cache, code: t.code }, mirror: { status: m.status, cache: m.cache, code: m.code, sameBody: m.body === t.body } };
  }
  const self = await call(18080, "rebind.evil.test:18080", "test", rid());
  const legitA = await call(18080, `legit.test:${legitPort}`, "test", rid());
  // DNS rebinding: the same name now resolves to the metadata address
  const first = await call(18080, `rebind.evil.test:${legitPort}`, "test", rid());
  writeHosts({ ...NAMES, "rebind.evil.test": "169.254.169.254" });
  const second = await call(18080, `rebind.evil.test:${legitPort}`, "test", rid());
  writeHosts(NAMES);
  return {
    denied,
    self: { status: self.status, code: self.code },
    legit: { status: legitA.status, body: legitA.body },
    rebind: { first: first.status, second: { status: second.status, code: second.code } },
    honeypotHits: { ...hits },
  };
});
const hitsBeforeLifted = { ...hits };

// Control: with the policy lifted the same names DO reach the honeypots — the detection works, and
// the namespace (not the code) is what kept the packets home.
const lifted = await withService(18081, { MIRROR_CACHE_EGRESS_ALLOW: "0.0.0.0/0,::/0" }, async () => {
  const statuses: Record<string, number> = {};
  for (const host of ["imds.evil.test:80", "loop2.evil.test:80"]) statuses[host] = (await call(18081, host, "test", rid())).status;
  return { statuses, honeypotHits: { ...hits } };
});

for (const s of servers) s.close();
process.stdout.write(JSON.stringify({ policyOn, hitsBeforeLifted, lifted }) + "\n");
process.exit(0);
