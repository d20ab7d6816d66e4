// mirror-cache service benchmark: our figures and their baselines, measured side by side in ONE
// run on this machine, with a real load generator (wrk) in its own process.
//
//   npx tsx bench/service/run.ts [--duration 10] [--warmup 3] [--connections 50] [--soak 30]
//                                [--only bare,nginx,forward,test,hit,redis,memory,soak]
//                                [--sizes 1024,65536] [--record-gb 10] [--entry server|bench] [--quiet-wait 180]
//                                [--rounds 3]  (forwarder / test-path rounds; memory hit rounds)
//                                [--node-flags=--single-threaded-gc]  (for every Node server)
//                                [--huge-pages on|off]  (GLIBC_TUNABLES=glibc.malloc.hugetlb=1 for every Node server; on)
//                                [--profile]   (our service and the forwarder run with --cpu-prof)
//                                [--out bench/results/service.json]  (and .md next to it)
//
// Layout on a 2-core box: the server under test is pinned to CPU 0 (taskset), wrk to CPU 1 (one
// thread, keep-alive, --connections connections), both at nice -5 when run as root. The bench upstream (node:http serving fixed
// bytes) also sits on CPU 1: it is only busy in the forwarder / test-path runs, which compare
// with each other under the same layout; so does redis-server in the Redis hit run. Every run: a
// warm-up (discarded), then the measured run.
// Every run uses the same wrk Lua script (wrk/ids.lua), which sets a fresh x-request-id per
// request, so the load generator does the same work for baselines and for us.
//
// Sections:
//   bare     bare Fastify route serving 1 KiB / 64 KiB from memory            (baseline)
//   nginx    nginx proxy_cache hit path in front of the upstream, warmed     (baseline)
//   forward  minimal Fastify + undici forwarder to the upstream              (baseline)
//   test     ours: test path (forward + record), memory store; run in alternating rounds with
//            `forward` (--rounds), the ratio being the median of the per-round ratios
//   hit      ours: mirror hit path, memory store, 1 KiB and 64 KiB, in --rounds rounds (one
//            service per size, filled to its budget, then prefilled before each round); with
//            `bare`, the bare route is measured again just before and just after each memory hit
//            run, each round is compared with the mean of those two, and the ratio is the median
//            of the rounds' ratios
//   redis    ours: mirror hit path, Redis store (own redis-server), 1 KiB
//   memory   memory store bytes per record (in-process, --expose-gc)
//   soak     service RSS sampled over a run on a fixed set of request ids
// Results: a table on stdout and bench/results/service.json.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { HUGE_PAGES_TUNABLES } from "../../service/huge-pages.ts";
import { freePort, startRedis, type RedisServer } from "../../test/support/redis-server.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const SERVER_CPU = "0";
const LOAD_CPU = "1";

// ---- arguments ---------------------------------------------------------------------------------
function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : def;
}
const DURATION = Number(arg("duration", "10"));
const WARMUP = Number(arg("warmup", "3"));
const CONNECTIONS = Number(arg("connections", "50"));
const SOAK = Number(arg("soak", "30"));
const RECORD_GB = Number(arg("record-gb", "10"));
const QUIET_WAIT = Number(arg("quiet-wait", "180"));
/** --node-flags "--a --b": V8/Node flags for every Node server of the bench (bare, forwarder,
 * upstream, ours), e.g. --single-threaded-gc. Default none. */
const NODE_FLAGS: readonly string[] = arg("node-flags", "").split(" ").filter(Boolean);
/** Environment of every Node server (ours and the baselines): malloc on transparent huge pages, as
 * the image and `npm start` run the service (service/huge-pages.ts says why). `--huge-pages off`
 * runs them all without it. */
const HUGE_PAGES = arg("huge-pages", "on");
if (HUGE_PAGES !== "on" && HUGE_PAGES !== "off") throw new Error(`--huge-pages must be on or off, not ${JSON.stringify(HUGE_PAGES)}`);
const NODE_ENV: Readonly<Record<string, string>> = { GLIBC_TUNABLES: HUGE_PAGES === "on" ? HUGE_PAGES_TUNABLES : "" };
/** Rounds of the alternating forwarder / test-path runs (see benchForwardAndTestPath). */
const ROUNDS = Math.max(1, Number(arg("rounds", "3")));
/** --profile: start our service and the forwarder with --cpu-prof (profiles land in the run's tmp dir). */
const PROFILE = process.argv.includes("--profile");
/** --sizes 1024,65536: body sizes of the bare / nginx / forward / test / hit runs. */
const SIZES: readonly number[] = arg("sizes", "1024,65536").split(",").map(Number);
const ONLY = new Set(arg("only", "bare,nginx,forward,test,hit,redis,memory,soak").split(","));
const ENTRY = arg("entry", existsSync(join(root, "service/server.ts")) ? "server" : "bench");

const tmp = mkdtempSync(join(os.tmpdir(), "mesh-mirror-bench-"));
const hasTaskset = spawnSync("taskset", ["--version"]).status === 0 && os.cpus().length >= 2;
const children = new Set<ChildProcess>();

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- processes ---------------------------------------------------------------------------------
interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

// Measured processes also run at nice -5 (as root): on a box shared with other sessions they
// then get most, not all, of their core when something else wakes up mid-run.
const NICE = process.getuid?.() === 0 ? ["nice", "-n", "-5"] : [];
function pinned(cpu: string | undefined, cmd: string, args: string[]): [string, string[]] {
  const full = hasTaskset && cpu !== undefined ? [...NICE, "taskset", "-c", cpu, cmd, ...args] : [...NICE, cmd, ...args];
  return [full[0], full.slice(1)];
}

function waitForPort(port: number, timeoutMs: number, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolveP, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`${name} exited with ${child.exitCode}; see ${tmp}/${name}.log`));
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolveP();
      });
      s.once("error", () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`${name} did not listen on ${port} within ${timeoutMs} ms; see ${tmp}/${name}.log`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

async function startProc(name: string, cmd: string, args: string[], opts: { env?: Record<string, string>; cpu?: string; port: number }): Promise<Proc> {
  const [c, a] = pinned(opts.cpu, cmd, args);
  const out = createWriteStream(join(tmp, `${name}.log`));
  const child = spawn(c, a, { cwd: root, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  children.add(child);
  child.once("exit", () => children.delete(child));
  await waitForPort(opts.port, 120_000, child, name); // generous: the cold bare baseline builds its bodies first
  return {
    name,
    child,
    pid: child.pid!, // nice and taskset exec the command: same pid
    port: opts.port,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function startNode(name: string, script: string, env: Record<string, string>, cpu?: string, nodeArgs: string[] = []): Promise<Proc> {
  const port = Number(env.PORT ?? (await freePort()));
  return startProc(name, process.execPath, [...NODE_FLAGS, ...nodeArgs, "--import", "tsx", script], { env: { ...NODE_ENV, ...env, PORT: String(port) }, cpu, port });
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

// ---- other load on the machine ---------------------------------------------------------------
// This box is shared (other sessions compile and test on it). Before each measured run we wait
// for the machine to be quiet, and during it we count the CPU time of every process that is not
// ours; a run disturbed by more than 0.15 core is repeated (twice at most), then kept and flagged.
const HZ = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

function procTicks(): Map<number, { ppid: number; ticks: number }> {
  const out = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      // after the comm: state(0) ppid(1) … utime(11) stime(12)
      out.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      /* gone */
    }
  }
  return out;
}

function ours(snap: Map<number, { ppid: number }>): Set<number> {
  const mine = new Set<number>([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, { ppid }] of snap) if (!mine.has(pid) && mine.has(ppid)) {
      mine.add(pid);
      grew = true;
    }
  }
  return mine;
}

/** CPU ticks of a process and its descendants (nginx workers) in a snapshot. */
function treeTicks(snap: Map<number, { ppid: number; ticks: number }>, rootPid: number): number {
  const tree = new Set<number>([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, { ppid }] of snap) if (!tree.has(pid) && tree.has(ppid)) {
      tree.add(pid);
      grew = true;
    }
  }
  let t = 0;
  for (const pid of tree) t += snap.get(pid)?.ticks ?? 0;
  return t;
}

/** CPU cores used by processes that are not ours between two snapshots. */
function foreignCores(before: Map<number, { ticks: number }>, after: Map<number, { ppid: number; ticks: number }>, seconds: number): number {
  const mine = ours(after);
  let t = 0;
  for (const [pid, { ticks }] of after) if (!mine.has(pid)) t += ticks - (before.get(pid)?.ticks ?? 0);
  return t / HZ / seconds;
}

async function waitQuiet(label: string): Promise<number> {
  const deadline = Date.now() + QUIET_WAIT * 1000;
  let busy = 0;
  for (;;) {
    const a = procTicks();
    await sleep(1000);
    busy = foreignCores(a, procTicks(), 1);
    if (busy < 0.15 || Date.now() > deadline) break;
    log(`${label}: waiting for the machine to be quiet (other processes use ${busy.toFixed(2)} cores)`);
    await sleep(2000);
  }
  return busy;
}

// ---- wrk ---------------------------------------------------------------------------------------
interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  seconds: number;
  non2xx: number;
  socketErrors: number;
  issued: number;
  /** From ids.lua's "tail" line: p90, p99.9 and the slowest request (ms). */
  p90ms?: number;
  p999ms?: number;
  maxms?: number;
}

function ms(v: string, unit: string): number {
  const n = Number(v);
  return unit === "us" ? n / 1000 : unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
}

function parseWrk(text: string): WrkResult {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const lat = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text);
    return m ? ms(m[1], m[2]) : Number.NaN;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const req = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: lat("50"),
    p99ms: lat("99"),
    requests: req ? Number(req[1]) : 0,
    seconds: req ? ms(req[2], req[3]) / 1000 : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    issued: num(/^issued (\d+)$/m),
    ...tail(text),
  };
}

function tail(text: string): Pick<WrkResult, "p90ms" | "p999ms" | "maxms"> {
  const m = /^tail (\d+) (\d+) (\d+) (\d+)$/m.exec(text);
  return m ? { p90ms: Number(m[1]) / 1000, p999ms: Number(m[3]) / 1000, maxms: Number(m[4]) / 1000 } : {};
}

interface WrkRun {
  port: number;
  path: string;
  seconds: number;
  script?: string;
  args: string[];
}

function wrk(run: WrkRun): Promise<WrkResult> {
  const script = run.script ?? join(here, "wrk/ids.lua");
  const [c, a] = pinned(LOAD_CPU, "wrk", [
    "-t1",
    `-c${CONNECTIONS}`,
    `-d${run.seconds}s`,
    "--timeout",
    "10s",
    "--latency",
    "-s",
    script,
    `http://127.0.0.1:${run.port}${run.path}`,
    "--",
    ...run.args,
  ]);
  return new Promise((resolveP, reject) => {
    const child = spawn(c, a, { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    child.once("error", reject);
    child.once("exit", (code) => {
      children.delete(child);
      if (code !== 0) return reject(new Error(`wrk exited ${code}:\n${out}`));
      resolveP(parseWrk(out));
    });
  });
}

type Measured = WrkResult & {
  warmupIssued: number;
  foreignCores: number;
  attempts: number;
  /** CPU time the server (process tree) spent per answered request, in µs: unlike req/s, this
   * hardly moves when other processes take CPU away from the run. */
  serverCpuUsPerReq?: number;
  note?: string;
  /** Cold bare baseline: bytes of distinct body copies served. */
  workingSetBytes?: number;
  /** Alternating rounds: every round's req/s (this run is the median one). */
  roundsRps?: number[];
};

/** Warm-up (discarded) then the measured run. `args(offset)` builds the Lua args; the offset is
 * the number of requests already issued (ids are never reused across warm-up, run and retries).
 * `retry: false` for runs that consume prefilled records. `opts.fit`: the run's length in seconds,
 * chosen once the warm-up's rate is known (runs that must not outlast their records). */
async function measure(
  label: string,
  port: number,
  path: string,
  args: (offset: number, phase: "warmup" | "run") => string[],
  seconds = DURATION,
  retry = true,
  serverPid?: number,
  opts: { warmupSeconds?: number; fit?: (warmup: WrkResult) => number } = {},
): Promise<Measured> {
  let offset = 0;
  let warmupIssued = 0;
  let best: Measured | undefined;
  const warmupSeconds = opts.warmupSeconds ?? WARMUP;
  for (let attempt = 1; ; attempt++) {
    await waitQuiet(label);
    log(`${label}: warm-up ${warmupSeconds} s`);
    const w = await wrk({ port, path, seconds: warmupSeconds, args: args(offset, "warmup") });
    offset += w.issued;
    warmupIssued += w.issued;
    if (opts.fit) seconds = opts.fit(w);
    log(`${label}: measuring ${seconds} s`);
    const before = procTicks();
    const r = await wrk({ port, path, seconds, args: args(offset, "run") });
    const after = procTicks();
    const foreign = foreignCores(before, after, seconds);
    const cpuUs = serverPid && r.requests ? ((treeTicks(after, serverPid) - treeTicks(before, serverPid)) / HZ / r.requests) * 1e6 : undefined;
    offset += r.issued;
    log(`${label}: ${Math.round(r.rps)} req/s, p99 ${r.p99ms.toFixed(2)} ms${r.p999ms !== undefined ? ` (p90 ${r.p90ms!.toFixed(2)}, p99.9 ${r.p999ms.toFixed(2)}, max ${r.maxms!.toFixed(1)})` : ""}${r.non2xx ? `, ${r.non2xx} non-2xx` : ""}${r.socketErrors ? `, ${r.socketErrors} socket errors` : ""}${cpuUs ? `, server CPU ${cpuUs.toFixed(1)} µs/req` : ""}; other processes used ${foreign.toFixed(2)} cores`);
    const m: Measured = { ...r, issued: offset - warmupIssued, warmupIssued, foreignCores: foreign, attempts: attempt, serverCpuUsPerReq: cpuUs };
    if (!best || foreign < best.foreignCores) best = m;
    if (foreign <= 0.15 || !retry || attempt >= 3) {
      // the least disturbed attempt
      best.attempts = attempt;
      best.issued = offset - warmupIssued;
      best.warmupIssued = warmupIssued;
      if (best.foreignCores > 0.15) {
        best.note = `disturbed: other processes used ${best.foreignCores.toFixed(2)} cores during the run`;
        notes.push(`${label}: ${best.note}`);
      }
      return best;
    }
    log(`${label}: repeating (disturbed run)`);
  }
}

// ---- bench servers ------------------------------------------------------------------------------
const results: Record<string, unknown> = {};
const runs: Record<string, Measured | undefined> = {};
/** Ratios of a run to its baseline measured right beside it (alternating rounds, or baseline
 * runs just before and after it), by "<run key>:<baseline key>"; the table shows their median. */
const pairedRatios: Record<string, number[]> = {};
/** p99 ratios of the same pairs. */
const pairedP99Ratios: Record<string, number[]> = {};
const notes: string[] = [];

function expectedBody(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) };
}

let upstream: Proc | undefined;
async function ensureUpstream(): Promise<Proc> {
  upstream ??= await startNode("upstream", "bench/service/servers/upstream.ts", {}, LOAD_CPU);
  return upstream;
}

function serviceEnv(port: number, extra: Record<string, string>): Record<string, string> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32",
    ...extra,
  };
}

/** Node arguments that write `name`'s CPU profiles into its own directory (with --profile). */
function profArgs(name: string): string[] {
  return PROFILE ? ["--cpu-prof", "--cpu-prof-dir", join(tmp, "prof", name)] : [];
}

async function startService(name: string, extra: Record<string, string>): Promise<Proc> {
  const port = await freePort();
  const script = ENTRY === "server" ? "service/server.ts" : "bench/service/servers/service.ts";
  // One directory per service and Node's own file names: with `--import tsx` the module-loader
  // worker thread writes a profile too, and under one --cpu-prof-name its (idle) profile would
  // overwrite the main thread's. The main thread's is the large one.
  const prof = profArgs(name);
  let p: Proc | undefined;
  // The service is being edited while this bench runs: a start that fails is retried a few times.
  for (let attempt = 1; !p; attempt++) {
    try {
      p = await startNode(name, script, serviceEnv(port, extra), SERVER_CPU, prof);
    } catch (err) {
      if (attempt >= 6) throw err;
      log(`${name}: did not start (${(err as Error).message.split("\n")[0]}); retrying in 20 s`);
      await sleep(20_000);
    }
  }
  // ready = /healthz answers
  for (let i = 0; i < 100; i++) {
    try {
      if ((await get(port, "/healthz")).status === 200) break;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  return p;
}

// ---- sections ------------------------------------------------------------------------------------
const ids = (stack: string, ranges: (phase: string) => string, host: string) => (offset: number, phase: "warmup" | "run") => [stack, ranges(phase), String(offset), host];

async function benchBare(): Promise<void> {
  const p = await startNode("bare", "bench/service/servers/bare.ts", {}, SERVER_CPU);
  try {
    for (const size of SIZES) runs[`bare_${size}`] = await measure(`bare fastify ${size} B`, p.port, `/bytes/${size}`, ids("-", (ph) => `bare-${ph}-:1:0`, "-"), DURATION, true, p.pid);
  } finally {
    await p.stop();
  }
  // The same route serving distinct copies of the body, as many bytes as the hit run's records:
  // every answer then comes from DRAM, as a record does, instead of from the CPU cache. Not the
  // issue's baseline (that is the run above); it shows how much of the gap is memory bandwidth.
  for (const size of SIZES) {
    const bytes = coldWorkingSet(size);
    const c = await startNode(`bare-cold-${size}`, "bench/service/servers/bare.ts", { BARE_WORKING_SET_BYTES: String(bytes), BARE_SIZES: String(size) }, SERVER_CPU);
    try {
      runs[`bare_cold_${size}`] = { ...(await measure(`bare fastify ${size} B, ${gib(bytes)} GiB working set`, c.port, `/bytes/${size}`, ids("-", (ph) => `bare-cold-${ph}-:1:0`, "-"), DURATION, true, c.pid)), workingSetBytes: bytes };
    } finally {
      await c.stop();
    }
  }
}

/** Body bytes a memory hit round of `size` prefills (see hitPlan), for the cold bare baseline:
 * the same working set. (Until 2026-12-03 it was capped at 2 GiB, which at 64 KiB is a sixth of
 * what the hit run reads.) */
function coldWorkingSet(size: number): number {
  return hitPlan("memory", size).needed * size;
}
const gib = (b: number) => (b / 1024 ** 3).toFixed(1);

async function benchNginx(): Promise<void> {
  let nginx = spawnSync("sh", ["-c", "command -v nginx || ls /usr/sbin/nginx"], { encoding: "utf8" }).stdout.trim().split("\n")[0];
  if (!nginx && process.getuid?.() === 0) {
    log("nginx missing: apt-get install -y nginx");
    spawnSync("sh", ["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx"], { stdio: "inherit" });
    nginx = spawnSync("sh", ["-c", "command -v nginx || ls /usr/sbin/nginx"], { encoding: "utf8" }).stdout.trim().split("\n")[0];
  }
  if (!nginx) {
    notes.push("nginx baseline skipped: nginx is not installed and could not be installed (apt-get install -y nginx)");
    return;
  }
  const up = await ensureUpstream();
  const port = await freePort();
  const dir = join(tmp, "nginx");
  mkdirSync(join(dir, "logs"), { recursive: true });
  mkdirSync(join(dir, "cache"), { recursive: true });
  // One worker: the Node servers use one core too (CPU 0). keepalive_requests raised so nginx,
  // like Node, keeps every wrk connection for the whole run. No tcp_nopush: with keep-alive on
  // loopback it stalls 64 KiB answers on delayed ACKs (40 ms p99, 2k req/s instead of 30k).
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 10000000;
  keepalive_timeout 65;
  client_body_temp_path ${dir}/client_temp;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:10m max_size=1g inactive=60m use_temp_path=off;
  upstream origin { server 127.0.0.1:${up.port}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_key $uri;
      proxy_cache_valid 200 60m;
      add_header X-Cache $upstream_cache_status;
    }
  }
}
`,
  );
  const p = await startProc("nginx", nginx, ["-p", dir, "-c", join(dir, "nginx.conf")], { cpu: SERVER_CPU, port });
  try {
    for (const size of SIZES) {
      let status = "";
      for (let i = 0; i < 5 && status !== "HIT"; i++) status = String((await get(port, `/bytes/${size}`)).headers["x-cache"]);
      if (status !== "HIT") notes.push(`nginx: /bytes/${size} not a cache HIT after warming (${status})`);
      runs[`nginx_${size}`] = await measure(`nginx proxy_cache ${size} B`, port, `/bytes/${size}`, ids("-", (ph) => `ngx-${ph}-:1:0`, "-"), DURATION, true, p.pid);
    }
  } finally {
    await p.stop();
  }
}

/** The forwarder baseline and our test path, measured in alternating rounds (forwarder, ours,
 * forwarder, ours…) with both servers up: this machine's speed drifts by tens of percent within
 * minutes, and a pair of runs taken back to back sees the same machine. Each reported run is the
 * round with the median req/s; the ratio is the median of the per-round ratios. */
async function benchForwardAndTestPath(forward: boolean, test: boolean): Promise<void> {
  const up = await ensureUpstream();
  const host = `127.0.0.1:${up.port}`;
  const fwd = forward ? await startNode("forwarder", "bench/service/servers/forwarder.ts", { UPSTREAM: host }, SERVER_CPU, profArgs("forwarder")) : undefined;
  const svc = test ? await startService("service-test", { MIRROR_CACHE_STORE: "memory", MIRROR_CACHE_MAX_BYTES: String(TEST_PATH_BUDGET) }) : undefined;
  try {
    for (const size of SIZES) {
      if (svc) await fillStore("test path", svc.port, size, host, TEST_PATH_BUDGET, 60);
      const f: Measured[] = [];
      const t: Measured[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        const of = ROUNDS > 1 ? ` (round ${round}/${ROUNDS})` : "";
        if (fwd) f.push(await measure(`fastify+undici forwarder ${size} B${of}`, fwd.port, `/bytes/${size}`, ids("-", (ph) => `fwd${size}-${round}-${ph}-:1:0`, host), DURATION, true, fwd.pid));
        if (svc) t.push(await measure(`ours test path ${size} B${of}`, svc.port, `/bytes/${size}`, ids("test", (ph) => `tp${size}-${round}-${ph}-:1:0`, host), DURATION, true, svc.pid));
      }
      if (fwd) runs[`forward_${size}`] = medianRun(f);
      if (svc) runs[`test_${size}`] = medianRun(t);
      if (fwd && svc) {
        pairedRatios[`test_${size}:forward_${size}`] = t.map((x, i) => x.rps / f[i].rps);
        pairedP99Ratios[`test_${size}:forward_${size}`] = t.map((x, i) => x.p99ms / f[i].p99ms);
      }
    }
    if (svc) results.testPathServiceRssBytes = rssBytes(svc.pid);
  } finally {
    await fwd?.stop();
    await svc?.stop();
  }
}

/** Bytes a bench record of a `size`-byte body takes in the store, for sizing budgets and fills:
 * body + 1 KiB, more than the store counts (key, headers, overhead: ~400 B). */
function recordBytes(size: number): number {
  return size + 1024;
}

/** The test path's store budget: the default (256 MiB). */
const TEST_PATH_BUDGET = 256 * 1024 * 1024;

/** Test calls until the store holds ≥ 90 % of its `budget` (at most `maxSeconds`): the path is
 * measured on a store at its steady state, recording while it evicts, as a long-running replica
 * does, and not while the process is still growing its memory. (On this VM a page the process
 * touches for the first time costs several µs — the hypervisor backs guest memory lazily and takes
 * freed pages back — which made the first 256 MiB of records look like a third of the test path's
 * CPU, and holds a fresh service's 64 KiB test calls to 1–3.5k/s.) */
async function fillStore(what: string, port: number, size: number, host: string, budget: number, maxSeconds: number, overfill = 0): Promise<void> {
  const storeBytes = async () => Number(/^mirror_cache_store_bytes(?:\{[^}]*\})? (\d+)/m.exec((await get(port, "/metrics")).body.toString())?.[1] ?? 0);
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < maxSeconds * 1000; i++) {
    const bytes = await storeBytes();
    if (bytes >= 0.9 * budget) {
      // `overfill`: then about that share of the budget more, so the store has evicted and
      // recycled (its byte count cannot show that: it stops at the budget). In 2 s runs, because
      // the rate jumps once the store recycles.
      let more = 0;
      for (let j = 0; more * recordBytes(size) < overfill * budget; j++)
        more += (await wrk({ port, path: `/bytes/${size}`, seconds: 2, args: ["test", `fill${size}-over${j}-:1:0`, "0", host] })).issued;
      return log(`${what} ${size} B: store at ${mb(bytes)} MB of its ${mb(budget)} MB budget${overfill > 0 ? `, then ${more} test calls more` : ""}`);
    }
    log(`${what} ${size} B: filling the store (${mb(bytes)} MB of ${mb(budget)} MB)`);
    await wrk({ port, path: `/bytes/${size}`, seconds: 5, args: ["test", `fill${size}-${i}-:1:0`, "0", host] });
  }
  const note = `${what} ${size} B: the store did not reach 90 % of its budget within ${maxSeconds} s; measuring anyway`;
  notes.push(note);
  log(note);
}

/** The run with the median req/s (the lower middle one of an even count), with every round's
 * req/s beside it. */
function medianRun(rounds: Measured[]): Measured {
  const sorted = [...rounds].sort((a, b) => a.rps - b.rps);
  const m = sorted[(sorted.length - 1) >> 1];
  return rounds.length > 1 ? { ...m, roundsRps: rounds.map((x) => x.rps) } : m;
}

/** The mean (0 for none). */
function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Mirror hit path. A mirror call is a hit only when a test call with the same key was recorded:
 * key = (request id, method, authority, path, n), n = how many same-tuple calls this stack made
 * before. So every mirror request consumes one record of its own, whatever the id scheme: cycling
 * through K ids with per-id n needs K·n records just the same. We therefore prefill as many
 * records as the mirror runs (warm-up + measurement) can use, then drive mirror calls over the
 * same ids in the same order:
 *   - prefill: wrk test calls, in chunks; chunk j uses ids "<p>c<j>-2" … "<p>c<j>-<issued>", each
 *     once (n = 0; wrk never sends a run's first id). The last ≤ `CONNECTIONS` requests of a chunk
 *     were in flight when wrk stopped and may have left no record, so each chunk's usable range
 *     stops `CONNECTIONS + 14` short.
 *   - mirror: wrk with the same Lua script walking the usable ranges in order (ids.lua "ranges"),
 *     so the i-th mirror request carries the i-th recorded id with n = 0 → a hit.
 *   - how many: the bare-Fastify rate of that size (never below a floor, in case the baseline
 *     was disturbed) × (warm-up + duration) × 1.15; if that would not fit in 80 % of
 *     `--record-gb`, the round gets what does and the run is shortened to what the warm-up's rate
 *     says the records cover, and says so. A run that still runs out is flagged in its note: its
 *     connections then wait MIRROR_CACHE_WAIT_MS for records that never come, past the run's end,
 *     so neither non-2xx answers nor latencies show it, only a lower req/s.
 *   - the store (memory): one service per size for all its rounds, with a budget that holds a
 *     round's records (HIT_BUDGET_SHARE), first filled until it holds 90 % of its budget and
 *     then with 30 % of the budget more (fillStore), so each round's prefill records into buffers
 *     that earlier records left, as on a replica that has run for a while. Two reasons. A fresh process pays this VM's first touch of each page (a 64 KiB test
 *     call: 1–3.5k/s fresh, 6–13k/s at steady state), so a fresh 12 GiB prefill took 100 s and
 *     more. And the mirror run then read records most of which had sat idle for over a minute,
 *     which this VM makes several times slower to read (bench/service/idle-memory-read.ts), while
 *     a real mirror call reads its record within moments of the test call writing it. Now a
 *     round's records are at most its prefill plus the bare run before it old (64 KiB: 15–25 s
 *     plus 13 s; 1 KiB, 800k records: 60–80 s).
 */
/** Share of the memory hit's store budget that one round's records may take: the rest is slack,
 * so that a round's prefill evicts the fill's and earlier rounds' records (least recently used),
 * never its own. */
const HIT_BUDGET_SHARE = 0.8;

/** How many records a hit round of `kind`/`size` prefills, and how long it warms up: enough for
 * the expected rate over warm-up + run, at most what `--record-gb` holds; and (memory) the store
 * budget. (How long the run then measures is fitted to its warm-up: see HIT_FIT_MARGIN.) */
function hitPlan(kind: "memory" | "redis", size: number): { warmup: number; needed: number; shortened: boolean; budget: number } {
  // Expected rate: the baseline's (a disturbed baseline reads low, so never below a floor).
  const est =
    kind === "memory"
      ? Math.max(size > 4096 ? 8_000 : 30_000, runs[`bare_${size}`]?.rps ?? 0)
      : Math.max(5_000, 1.3 * (runs[`hit_memory_${size}`]?.rps ?? 20_000));
  const perRecord = recordBytes(size);
  const maxRecords = Math.floor((HIT_BUDGET_SHARE * RECORD_GB * 1024 ** 3) / perRecord);
  const wanted = Math.ceil(est * 1.15 * (WARMUP + DURATION)) + 1_000;
  // Short of records: a 1 s warm-up (the prefill's test calls already ran the shared code hot),
  // and all the records --record-gb holds.
  const plan = wanted <= maxRecords ? { warmup: WARMUP, needed: wanted, shortened: false } : { warmup: 1, needed: maxRecords, shortened: true };
  return { ...plan, budget: Math.ceil((plan.needed * perRecord) / HIT_BUDGET_SHARE) };
}

/** A hit run lasts at most (records left after the warm-up) / (warm-up rate × this): a run that
 * outlasts its records ends with every connection waiting for a record that never comes
 * (MIRROR_CACHE_WAIT_MS), which no latency figure shows but which lowers the req/s. Until
 * 2026-12-03 the run length was fixed, and the 64 KiB rounds ran out 0.8 s before their end. A
 * run after a 1 s warm-up went 1.39× the warm-up's rate (JIT still warming in the warm-up). */
const HIT_FIT_MARGIN = 1.6;

async function benchHit(kind: "memory" | "redis", sizes: readonly number[]): Promise<void> {
  const up = await ensureUpstream();
  const host = `127.0.0.1:${up.port}`;
  let redis: RedisServer | undefined;
  // The memory hit's own baseline, the bare route, is measured again just before and just after
  // each hit run (this machine's speed drifts within minutes; the bare section ran long before).
  const bare = kind === "memory" && ONLY.has("bare") ? await startNode("bare-beside-hit", "bench/service/servers/bare.ts", {}, SERVER_CPU) : undefined;
  // The memory hit runs in --rounds rounds on one service per size, filled to its budget first
  // (see the comment above hitPlan); the ratio is the median of the rounds'. One run's p99 moved
  // between 0.45× and 2.12× of the bare route's across three runs of the same code. Redis: one
  // round on a fresh service (its target has a wide margin; its prefill is slow).
  const rounds = kind === "memory" ? ROUNDS : 1;
  let svc: Proc | undefined;
  try {
    for (const size of sizes) {
      const { warmup, needed, shortened, budget } = hitPlan(kind, size);
      if (shortened) notes.push(`hit ${kind} ${size} B: ${needed} prefilled records per round are what ${HIT_BUDGET_SHARE * 100} % of --record-gb ${RECORD_GB} holds: a ${warmup} s warm-up, and each round measures for as long as its records last at the warm-up's rate (at most ${DURATION} s)`);
      let fill: { seconds: number; rss: number } | undefined;
      if (kind === "memory") {
        svc = await startService(`service-hit-memory-${size}`, { ...HIT_ENV, MIRROR_CACHE_MAX_BYTES: String(budget) });
        const t0 = Date.now();
        await fillStore("hit memory", svc.port, size, host, budget, 600, 0.3);
        fill = { seconds: (Date.now() - t0) / 1000, rss: rssBytes(svc.pid) };
      } else {
        if (!redis) {
          redis = await startRedis();
          // Redis is another machine in production: here it gets the load generator's core
          // (wrk leaves most of it idle), not the core of the service under test. Unpinned,
          // the scheduler put it on the service's core, and the two took turns on it.
          if (hasTaskset && redis.pid) spawnSync("taskset", ["-a", "-cp", LOAD_CPU, String(redis.pid)]);
        }
        spawnSync("redis-cli", ["-p", String(redis.port), "FLUSHALL"]);
        svc = await startService(`service-hit-redis-${size}`, { ...HIT_ENV, MIRROR_CACHE_STORE: "redis", REDIS_URL: redis.url });
      }
      const hits: Measured[] = [];
      const beside: Array<[Measured, Measured]> = [];
      const prefills: unknown[] = [];
      for (let round = 1; round <= rounds; round++) {
        const of = rounds > 1 ? ` (round ${round}/${rounds})` : "";
        const r = await hitRound(kind, size, round, of, warmup, needed, host, svc, bare);
        hits.push(r.hit);
        if (r.beside) beside.push(r.beside);
        prefills.push(r.prefill);
      }
      await svc?.stop();
      svc = undefined;
      runs[`hit_${kind}_${size}`] = medianRun(hits);
      results[`hit_${kind}_${size}_prefill`] = rounds > 1 ? prefills : prefills[0];
      if (fill) results[`hit_${kind}_${size}_fill`] = { budgetBytes: budget, seconds: fill.seconds, rssAfterFill: fill.rss };
      if (beside.length === hits.length && beside.length > 0) {
        const all = beside.flat();
        const cpu = all.every((m) => m.serverCpuUsPerReq) ? mean(all.map((m) => m.serverCpuUsPerReq!)) : undefined;
        runs[`bare_beside_hit_${size}`] = {
          ...all[0],
          rps: mean(all.map((m) => m.rps)),
          p50ms: mean(all.map((m) => m.p50ms)),
          p99ms: mean(all.map((m) => m.p99ms)),
          p90ms: all.every((m) => m.p90ms !== undefined) ? mean(all.map((m) => m.p90ms!)) : undefined,
          p999ms: all.every((m) => m.p999ms !== undefined) ? mean(all.map((m) => m.p999ms!)) : undefined,
          maxms: all.every((m) => m.maxms !== undefined) ? Math.max(...all.map((m) => m.maxms!)) : undefined,
          serverCpuUsPerReq: cpu,
          roundsRps: all.map((m) => m.rps),
          note: all.map((m) => m.note).filter(Boolean).join("; ") || undefined,
        };
        // Each round against the mean of the bare runs just before and just after it.
        pairedRatios[`hit_memory_${size}:bare_beside_hit_${size}`] = hits.map((h, i) => h.rps / ((beside[i][0].rps + beside[i][1].rps) / 2));
        pairedP99Ratios[`hit_memory_${size}:bare_beside_hit_${size}`] = hits.map((h, i) => h.p99ms / ((beside[i][0].p99ms + beside[i][1].p99ms) / 2));
      }
    }
  } finally {
    await svc?.stop();
    await redis?.destroy();
    await bare?.stop();
  }
}

/** The hit services' settings: mirror calls wait up to 2 s; records live an hour. */
const HIT_ENV: Readonly<Record<string, string>> = { MIRROR_CACHE_WAIT_MS: "2000", MIRROR_CACHE_TTL_MS: "3600000" };

/** One hit round on `p`: `needed` records prefilled by test calls; a sanity exchange; then (with
 * `bare`) the bare route, the mirror hit run, the bare route again. */
async function hitRound(
  kind: "memory" | "redis",
  size: number,
  round: number,
  of: string,
  warmup: number,
  needed: number,
  host: string,
  p: Proc,
  bare: Proc | undefined,
): Promise<{ hit: Measured; beside?: [Measured, Measured]; prefill: unknown }> {
  // prefill: the first chunk (at most 5 s) measures the test calls' rate, which sizes the next
  // (at most 10 s each: a rate that rises mid-way overshoots less)
  let rate = (runs[`test_${size}`]?.rps ?? 3_000) * (kind === "redis" ? 0.6 : 1);
  let chunks: Array<{ prefix: string; first: number; count: number }> = [];
  let usable = 0;
  const t0 = Date.now();
  for (let chunk = 0; usable < needed; chunk++) {
    const secs = Math.min(chunk === 0 ? 5 : 10, Math.max(1, Math.ceil(((needed - usable) / rate) * 1.05)));
    const prefix = `h${kind[0]}${size}r${round}c${chunk}-`;
    const r = await wrk({ port: p.port, path: `/bytes/${size}`, seconds: secs, args: ["test", `${prefix}:1:0`, "0", host] });
    if (r.non2xx || r.socketErrors) notes.push(`hit ${kind} ${size} B${of} prefill chunk ${chunk}: ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
    // id 1 was never sent (see ids.lua); ids 2 … issued were, minus the tail in flight at the stop
    const u = Math.max(0, r.issued - 1 - CONNECTIONS - 14);
    chunks.push({ prefix, first: 2, count: u });
    usable += u;
    rate = Math.max(100, r.rps);
    log(`hit ${kind} ${size} B${of}: prefill chunk ${chunk}: ${r.issued} test calls at ${Math.round(r.rps)}/s (${usable}/${needed} usable)`);
    if (chunk > 20) throw new Error("prefill is not progressing");
  }
  // The memory store's budget holds at least 1/HIT_BUDGET_SHARE × `needed` records and evicts
  // the least recently used: after a prefill that overshot, the mirror run starts at the newest
  // records that surely fit.
  const fits = kind === "memory" ? Math.floor(needed * 1.2) : usable;
  for (let drop = usable - fits; drop > 0; ) {
    const c = chunks[0];
    const d = Math.min(drop, c.count);
    chunks = d === c.count ? chunks.slice(1) : [{ ...c, first: c.first + d, count: c.count - d }, ...chunks.slice(1)];
    usable -= d;
    drop -= d;
  }
  const ranges = chunks.map((c) => `${c.prefix}:${c.first}:${c.count}`);
  const prefillSeconds = (Date.now() - t0) / 1000;
  // Sanity: a test call then its mirror call: a hit, byte-identical to the upstream's body.
  const sid = `sanity-${kind}-${size}-r${round}`;
  await get(p.port, `/bytes/${size}`, { host, "x-mirror-stack": "test", "x-request-id": sid });
  const s = await get(p.port, `/bytes/${size}`, { host, "x-mirror-stack": "mirror", "x-request-id": sid });
  if (s.status !== 200 || s.headers["x-mirror-cache"] !== "hit" || Buffer.compare(s.body, expectedBody(size)) !== 0)
    throw new Error(`mirror sanity call: status ${s.status}, x-mirror-cache ${String(s.headers["x-mirror-cache"])}, ${s.body.length} bytes`);
  const rssAfterPrefill = rssBytes(p.pid);
  const bareRun = (when: string) => measure(`bare fastify ${size} B, ${when} the hit run${of}`, bare!.port, `/bytes/${size}`, ids("-", (ph) => `bare-${when}-r${round}-${ph}-:1:0`, "-"), DURATION, true, bare!.pid);
  const before = bare ? await bareRun("before") : undefined;
  const fit = (w: WrkResult): number => {
    const secs = Math.min(DURATION, Math.floor((usable - w.issued) / (w.rps * HIT_FIT_MARGIN)));
    if (secs < 1) throw new Error(`hit ${kind} ${size} B${of}: the warm-up (${Math.round(w.rps)} req/s) left records for less than 1 s: raise --record-gb`);
    return secs;
  };
  const hit = await measure(`ours mirror hit (${kind}) ${size} B${of}`, p.port, `/bytes/${size}`, (offset) => ["mirror", ranges.join(","), String(offset), host], DURATION, false, p.pid, { warmupSeconds: warmup, fit });
  const after = bare ? await bareRun("after") : undefined;
  const used = hit.warmupIssued + hit.issued;
  // `used` counts every id sent, answered or not: one past `usable` had no record.
  const out = used > usable ? `RAN OUT of prefilled records (${used} > ${usable}): its connections then waited for records that never came, so its req/s is understated` : undefined;
  if (out) notes.push(`hit ${kind} ${size} B${of}: ${out}`);
  return {
    hit: { ...hit, note: [hit.note, out].filter(Boolean).join("; ") || undefined },
    beside: before && after ? [before, after] : undefined,
    prefill: { records: usable, seconds: prefillSeconds, rssAfterPrefill, used },
  };
}

async function benchMemory(): Promise<void> {
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", join(here, "memory-overhead.ts"), "100000", "1024"], { cwd: root, env: { ...process.env, ...NODE_ENV }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`memory-overhead failed:\n${r.stderr}`);
  results.memoryOverhead = JSON.parse(r.stdout.trim().split("\n").pop()!);
  log(`memory overhead: ${JSON.stringify(results.memoryOverhead)}`);
}

async function benchSoak(): Promise<void> {
  const up = await ensureUpstream();
  const host = `127.0.0.1:${up.port}`;
  // Fixed key set: 1,000 request ids, each used by a test call and then a mirror call, over and
  // over. Records and counters live 10 s, so the store reaches its steady size early in the run;
  // from then on RSS should stay flat.
  const p = await startService("service-soak", { MIRROR_CACHE_TTL_MS: "10000", MIRROR_CACHE_WAIT_MS: "2000" });
  const samples: Array<[number, number]> = [];
  let t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await waitQuiet("soak");
    log(`soak: ${SOAK} s`);
    t0 = Date.now();
    timer = setInterval(() => samples.push([(Date.now() - t0) / 1000, rssBytes(p.pid)]), 1000);
    const r = await wrk({ port: p.port, path: "/bytes/1024", seconds: SOAK, script: join(here, "wrk/pairs.lua"), args: ["1000", host] });
    clearInterval(timer);
    // steady state: after the TTL plus a margin, or after the first quarter, whichever is later
    const from = Math.max(15, SOAK / 4);
    const steady = samples.filter(([t]) => t >= from).map(([, v]) => v);
    const half = Math.floor(steady.length / 2);
    const firstHalf = mean(steady.slice(0, half));
    const secondHalf = mean(steady.slice(half));
    results.soak = {
      seconds: SOAK,
      rps: r.rps,
      p99ms: r.p99ms,
      non2xx: r.non2xx,
      rssStartBytes: samples[0]?.[1],
      rssSteadyFirstHalfBytes: Math.round(firstHalf),
      rssSteadySecondHalfBytes: Math.round(secondHalf),
      rssMaxBytes: Math.max(...samples.map(([, v]) => v)),
      growth: steady.length >= 4 ? secondHalf / firstHalf - 1 : null,
      samples,
    };
    log(`soak: ${Math.round(r.rps)} req/s, RSS ${mb(firstHalf)} → ${mb(secondHalf)} MB over the steady part`);
  } finally {
    clearInterval(timer);
    await p.stop();
  }
}

// ---- report --------------------------------------------------------------------------------------
const mb = (b: number) => (b / 1024 / 1024).toFixed(0);
const fmt = (n: number | undefined, d = 0) => (n === undefined || Number.isNaN(n) ? "—" : n.toFixed(d));

interface Row {
  what: string;
  rps?: number;
  p99?: number;
  cpu?: number;
  cpuRatio?: number;
  vs?: string;
  ratio?: number;
  p99ratio?: number;
  target: string;
  ok?: boolean;
  note?: string;
}

function report(): Row[] {
  const rows: Row[] = [];
  const r = (k: string) => runs[k];
  const cmp = (what: string, k: string, base: string, baseLabel: string, min: number, maxP99?: number) => {
    const a = r(k);
    const b = r(base);
    if (!a) return;
    const paired = pairedRatios[`${k}:${base}`];
    const ratio = paired ? median(paired) : a && b ? a.rps / b.rps : undefined;
    const pairedP99 = pairedP99Ratios[`${k}:${base}`];
    const p99ratio = pairedP99 ? median(pairedP99) : a && b ? a.p99ms / b.p99ms : undefined;
    const ok = ratio === undefined ? undefined : ratio >= min && (maxP99 === undefined || (p99ratio ?? Infinity) <= maxP99) && !a.non2xx;
    rows.push({
      what,
      rps: a.rps,
      p99: a.p99ms,
      cpu: a.serverCpuUsPerReq,
      // capacity ratio from CPU per request: (baseline µs/req) / (ours µs/req)
      cpuRatio: a.serverCpuUsPerReq && b?.serverCpuUsPerReq ? b.serverCpuUsPerReq / a.serverCpuUsPerReq : undefined,
      vs: baseLabel,
      ratio,
      p99ratio,
      target: `≥ ${min}×${maxP99 ? `, p99 ≤ ${maxP99}×` : ""}`,
      ok,
      note:
        [
          paired
            ? base.startsWith("bare_beside_hit_")
              ? paired.length > 1
                ? `median of ${paired.length} rounds, each vs the mean of the bare route just before and just after it: ${paired.map((x) => `${x.toFixed(2)}×`).join(", ")}; p99 ${(pairedP99 ?? []).map((x) => `${x.toFixed(2)}×`).join(", ")}`
                : `vs the mean of the bare route just before and just after it: ${paired.map((x) => `${x.toFixed(2)}×`).join(", ")}`
              : `median of ${paired.length} alternating rounds: ${paired.map((x) => `${x.toFixed(2)}×`).join(", ")}`
            : "",
          a.non2xx ? `${a.non2xx} non-2xx` : "",
          a.note ?? "",
          b?.note ? `baseline ${b.note}` : "",
        ]
          .filter(Boolean)
          .join("; ") || undefined,
    });
  };
  const base = (what: string, k: string) => {
    const a = r(k);
    if (a) rows.push({ what, rps: a.rps, p99: a.p99ms, cpu: a.serverCpuUsPerReq, target: "baseline", note: [a.non2xx ? `${a.non2xx} non-2xx` : "", a.note ?? ""].filter(Boolean).join("; ") || undefined });
  };
  for (const s of SIZES) base(`bare Fastify route, ${s / 1024} KiB`, `bare_${s}`);
  for (const s of SIZES) {
    const ws = runs[`bare_cold_${s}`]?.workingSetBytes;
    if (ws) base(`bare Fastify route, ${s / 1024} KiB, from ${gib(ws)} GiB of distinct copies (cold)`, `bare_cold_${s}`);
  }
  for (const s of SIZES) base(`nginx proxy_cache hit, ${s / 1024} KiB`, `nginx_${s}`);
  for (const s of SIZES) base(`Fastify + undici forwarder, ${s / 1024} KiB`, `forward_${s}`);
  for (const s of SIZES) {
    const beside = r(`bare_beside_hit_${s}`);
    if (beside) base(`bare Fastify route, ${s / 1024} KiB, just before and after each memory hit run (mean of ${beside.roundsRps!.map((x) => Math.round(x)).join(", ")} req/s)`, `bare_beside_hit_${s}`);
  }
  // The hit's baseline: the bare route measured beside it when it was, else the bare section's.
  for (const s of SIZES) cmp(`ours: mirror hit, memory, ${s / 1024} KiB`, `hit_memory_${s}`, r(`bare_beside_hit_${s}`) ? `bare_beside_hit_${s}` : `bare_${s}`, "bare Fastify", 0.8, 1.5);
  for (const s of SIZES) if (r(`bare_cold_${s}`)) cmp(`ours: mirror hit, memory, ${s / 1024} KiB, vs the same working set`, `hit_memory_${s}`, `bare_cold_${s}`, "bare Fastify, cold", 0.8, 1.5);
  for (const s of SIZES) cmp(`ours: mirror hit, memory, ${s / 1024} KiB (stretch)`, `hit_memory_${s}`, `nginx_${s}`, "nginx", 0.75);
  for (const s of SIZES) cmp(`ours: test path, memory, ${s / 1024} KiB`, `test_${s}`, `forward_${s}`, "forwarder", 0.9);
  for (const s of SIZES) cmp(`ours: mirror hit, redis, ${s / 1024} KiB`, `hit_redis_${s}`, `hit_memory_${s}`, "mirror hit, memory", 0.5);
  type Overhead = { overheadBeyondBody: number; overheadBeyondPayload: number };
  const mo = results.memoryOverhead as { typical: Overhead; worst: Overhead; exchange?: Overhead } | undefined;
  if (mo) {
    rows.push({
      what: "memory store: bytes/record beyond the body (typical headers)",
      target: "≤ 512 B",
      ok: mo.typical.overheadBeyondBody <= 512,
      note: `${mo.typical.overheadBeyondBody} B (${mo.typical.overheadBeyondPayload} B beyond body+key+header chars)`,
    });
    rows.push({
      what: "memory store: bytes/record beyond the body (every header value unique)",
      target: "≤ 512 B",
      ok: mo.worst.overheadBeyondBody <= 512,
      note: `${mo.worst.overheadBeyondBody} B (${mo.worst.overheadBeyondPayload} B beyond body+key+header chars)`,
    });
    if (mo.exchange)
      rows.push({
        what: "memory store: bytes/record beyond the body, recorded as a test call does (typical headers; its sequence counter included)",
        target: "",
        ok: undefined,
        note: `${mo.exchange.overheadBeyondBody} B (${mo.exchange.overheadBeyondPayload} B beyond body+key+header chars)`,
      });
  }
  const soak = results.soak as { growth: number | null; rssSteadyFirstHalfBytes: number; rssSteadySecondHalfBytes: number; seconds: number; rps: number; non2xx: number } | undefined;
  if (soak) {
    rows.push({
      what: `service RSS over a ${soak.seconds} s run, fixed ids (test+mirror pairs)`,
      rps: soak.rps,
      target: "flat (≤ +10 %)",
      ok: soak.growth !== null && soak.growth <= 0.1,
      note: `${mb(soak.rssSteadyFirstHalfBytes)} → ${mb(soak.rssSteadySecondHalfBytes)} MB (${soak.growth === null ? "too short" : `${(soak.growth * 100).toFixed(1)} %`})${soak.non2xx ? `; ${soak.non2xx} non-2xx` : ""}`,
    });
  }
  return rows;
}

function printTable(rows: Row[]): string {
  const head = ["scenario", "req/s", "p99 ms", "server CPU µs/req", "vs", "req/s ratio", "p99 ratio", "CPU-capacity ratio", "target", "ok", "note"];
  const lines = rows.map((x) => [
    x.what,
    fmt(x.rps),
    fmt(x.p99, 2),
    fmt(x.cpu, 1),
    x.vs ?? "",
    x.ratio === undefined ? "" : `${x.ratio.toFixed(2)}×`,
    x.p99ratio === undefined ? "" : `${x.p99ratio.toFixed(2)}×`,
    x.cpuRatio === undefined ? "" : `${x.cpuRatio.toFixed(2)}×`,
    x.target,
    x.ok === undefined ? "" : x.ok ? "yes" : "NO",
    x.note ?? "",
  ]);
  const md = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...lines.map((l) => `| ${l.join(" | ")} |`)].join("\n");
  return md;
}

// ---- main --------------------------------------------------------------------------------------
async function main(): Promise<void> {
  if (spawnSync("wrk", ["--version"]).error) throw new Error("wrk is not installed: apt-get install -y wrk");
  log(`tmp ${tmp}; ${os.cpus().length} CPUs; taskset ${hasTaskset ? "on" : "off"}; service entry: ${ENTRY}`);
  const started = new Date();
  try {
    if (ONLY.has("bare")) await benchBare();
    if (ONLY.has("nginx")) await benchNginx();
    if (ONLY.has("forward") || ONLY.has("test")) await benchForwardAndTestPath(ONLY.has("forward"), ONLY.has("test"));
    if (ONLY.has("hit")) await benchHit("memory", SIZES);
    if (ONLY.has("redis")) await benchHit("redis", [1024]);
    if (ONLY.has("memory")) await benchMemory();
    if (ONLY.has("soak")) await benchSoak();
  } finally {
    await upstream?.stop();
  }
  const rows = report();
  const table = printTable(rows);
  const wrkVersion = spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
  const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${Math.round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
  console.log(`\nmirror-cache service bench — ${started.toISOString().slice(0, 10)}, ${machine}`);
  console.log(`wrk -t1 -c${CONNECTIONS}, warm-up ${WARMUP} s + ${DURATION} s per run, server on CPU ${SERVER_CPU}, wrk on CPU ${LOAD_CPU}\n`);
  console.log(table);
  for (const n of notes) console.log(`\nnote: ${n}`);
  const out = resolve(root, arg("out", "bench/results/service.json"));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: started.toISOString(),
        machine,
        load: { tool: wrkVersion, threads: 1, connections: CONNECTIONS, warmupSeconds: WARMUP, durationSeconds: DURATION, serverCpu: SERVER_CPU, loadCpu: LOAD_CPU, taskset: hasTaskset },
        entry: ENTRY,
        nodeFlags: NODE_FLAGS,
        nodeEnv: NODE_ENV,
        rounds: ROUNDS,
        runs,
        pairedRatios,
        pairedP99Ratios,
        ...results,
        rows,
        notes,
        table,
      },
      null,
      2,
    ) + "\n",
  );
  const md = [
    `Measured ${started.toISOString().slice(0, 16).replace("T", " ")} UTC on ${machine}; \`npx tsx bench/service/run.ts\``,
    `(wrk -t1 -c${CONNECTIONS}, keep-alive, warm-up ${WARMUP} s + ${DURATION} s per run; server pinned to CPU ${SERVER_CPU}, wrk to CPU ${LOAD_CPU}; Node servers run with GLIBC_TUNABLES=${NODE_ENV.GLIBC_TUNABLES || "(empty)"}${NODE_FLAGS.length ? ` ${NODE_FLAGS.join(" ")}` : ""}).`,
    "",
    table,
    ...notes.map((n) => `\n- ${n}`),
  ].join("\n");
  const mdOut = out.replace(/\.json$/, "") + ".md";
  writeFileSync(mdOut, md + "\n");
  console.log(`\nwrote ${out} and ${mdOut}; logs in ${tmp}`);
}

function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
}
process.on("exit", cleanup);
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});
main().catch((err) => {
  console.error(err);
  cleanup();
  process.exit(1);
});
