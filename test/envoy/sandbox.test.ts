// envoy/sandbox: no Docker or Envoy here, so the sandbox is checked by construction — the YAML
// parses, every cluster a route / mirror policy / the filter configuration names exists, the wasm
// filter's typed config is what Envoy expects, the module path matches the compose mount, the
// configuration passes the filter's own parser (build/filter.wasm in the emulator), the compose
// topology matches the Envoy endpoints, verify.sh parses and runs exactly the README's commands,
// and the sample app/upstream answer in the format verify.sh greps.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadYaml, readmeCommands, readText, ROOT, runFilterConfig, verifyCommands, type Obj } from "./helpers.ts";

const SANDBOX = join(ROOT, "envoy", "sandbox");
const compose = loadYaml(join(SANDBOX, "docker-compose.yaml"));

const WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue";
const HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

const ENVOYS = [
  { service: "envoy-test", file: "envoy-test.yaml", stack: "test", failurePolicy: "FAIL_OPEN" },
  { service: "envoy-mirror", file: "envoy-mirror.yaml", stack: "mirror", failurePolicy: "FAIL_CLOSED" },
] as const;

interface WasmFilter {
  listener: string;
  config: Obj; // PluginConfig
  configuration: Obj; // parsed JSON
  raw: string;
}

function hcms(envoy: Obj): { listener: Obj; hcm: Obj }[] {
  const out: { listener: Obj; hcm: Obj }[] = [];
  for (const l of envoy.static_resources.listeners) {
    for (const fc of l.filter_chains) {
      for (const f of fc.filters) if (f.typed_config?.["@type"] === HCM_TYPE) out.push({ listener: l, hcm: f.typed_config });
    }
  }
  return out;
}

function wasmFilters(envoy: Obj): WasmFilter[] {
  const out: WasmFilter[] = [];
  for (const { listener, hcm } of hcms(envoy)) {
    for (const f of hcm.http_filters) {
      if (f.typed_config?.["@type"] !== WASM_TYPE) continue;
      const raw = f.typed_config.config.configuration.value;
      out.push({ listener: listener.name, config: f.typed_config.config, configuration: JSON.parse(raw), raw });
    }
  }
  return out;
}

function clusterNames(envoy: Obj): Set<string> {
  return new Set(envoy.static_resources.clusters.map((c: Obj) => c.name));
}

/** Mount target of `source` (relative to the sandbox) in a compose service's volumes. */
function mountTarget(service: Obj, source: string): string | undefined {
  for (const v of service.volumes ?? []) {
    const [src, dst] = String(v).split(":");
    if (resolve(SANDBOX, src) === resolve(SANDBOX, source)) return dst;
  }
  return undefined;
}

describe("envoy/sandbox bootstrap files", () => {
  for (const e of ENVOYS) {
    describe(e.file, () => {
      const envoy = loadYaml(join(SANDBOX, e.file));
      const clusters = clusterNames(envoy);

      it("parses, has an admin port and unique listener/cluster names", () => {
        expect(envoy.admin.address.socket_address.port_value).toBe(9901);
        const listeners = envoy.static_resources.listeners.map((l: Obj) => l.name);
        expect(new Set(listeners).size).toBe(listeners.length);
        expect(clusters.size).toBe(envoy.static_resources.clusters.length);
        for (const c of envoy.static_resources.clusters) {
          expect(c.load_assignment.cluster_name, c.name).toBe(c.name);
        }
      });

      it("every cluster a route or mirror policy names exists", () => {
        const named: string[] = [];
        for (const { hcm } of hcms(envoy)) {
          for (const vh of hcm.route_config.virtual_hosts) {
            for (const r of vh.routes) {
              if (r.route?.cluster) named.push(r.route.cluster);
              for (const m of r.route?.request_mirror_policies ?? []) named.push(m.cluster);
            }
          }
        }
        expect(named.length).toBeGreaterThan(0);
        for (const n of named) expect(clusters.has(n), `cluster ${n}`).toBe(true);
      });

      it("every HTTP connection manager ends with the router, the wasm filter before it", () => {
        for (const { listener, hcm } of hcms(envoy)) {
          const names = hcm.http_filters.map((f: Obj) => f.name);
          expect(names.at(-1), listener.name).toBe("envoy.filters.http.router");
          expect(hcm.http_filters.at(-1).typed_config["@type"]).toBe("type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
        }
      });

      it("the wasm filter's typed config is Wasm with a StringValue configuration, v8, the mounted module", () => {
        const filters = wasmFilters(envoy);
        expect(filters.length).toBe(e.stack === "mirror" ? 2 : 1);
        const service = compose.services[e.service];
        const target = mountTarget(service, "../../build/filter.wasm");
        expect(target, "compose mounts ../../build/filter.wasm").toBeDefined();
        for (const f of filters) {
          expect(f.config.configuration["@type"]).toBe(STRING_VALUE);
          expect(typeof f.config.configuration.value).toBe("string");
          expect(f.config.vm_config.runtime).toBe("envoy.wasm.runtime.v8");
          expect(f.config.vm_config.code.local.filename).toBe(target);
          expect(["FAIL_OPEN", "FAIL_CLOSED"]).toContain(f.config.failure_policy);
          expect(f.config.fail_open, "deprecated fail_open: use failure_policy").toBeUndefined();
        }
      });

      it("the filter configuration names an existing cache_cluster and the right stack", () => {
        for (const f of wasmFilters(envoy)) {
          expect(clusters.has(f.configuration.cache_cluster), f.configuration.cache_cluster).toBe(true);
          expect(f.configuration.stack).toBe(e.stack);
        }
      });

      it("egress: buffer_bodies with allow_on_headers_stop_iteration, failure policy per stack", () => {
        const egress = wasmFilters(envoy).filter((f) => (f.configuration.direction ?? "outbound") === "outbound");
        expect(egress.length).toBe(1);
        expect(egress[0].listener).toBe("egress");
        expect(egress[0].configuration.buffer_bodies).toBe(true);
        expect(egress[0].config.allow_on_headers_stop_iteration).toBe(true);
        expect(egress[0].config.failure_policy).toBe(e.failurePolicy);
      });

      it("the egress listener keeps the app's x-request-id (the pairing key)", () => {
        const egress = hcms(envoy).find((h) => h.listener.name === "egress")!;
        expect(egress.hcm.preserve_external_request_id).toBe(true);
      });

      it("the configurations pass the filter's own parser (build/filter.wasm in the emulator)", async () => {
        for (const f of wasmFilters(envoy)) {
          const r = await runFilterConfig(f.raw, [...clusters], { allowOnHeadersStopIteration: f.config.allow_on_headers_stop_iteration === true });
          expect(r.configured, `${e.file} ${f.listener}: ${f.raw}\n${r.logs.join("\n")}`).toBe(true);
        }
      });
    });
  }

  it("the parser check is not vacuous: a configuration without cache_cluster is refused", async () => {
    const r = await runFilterConfig(JSON.stringify({ stack: "test", buffer_bodies: true }), ["mirror_cache"]);
    expect(r.configured).toBe(false);
  });

  it("the mirror Envoy has the inbound listener with the filter in direction inbound", () => {
    const envoy = loadYaml(join(SANDBOX, "envoy-mirror.yaml"));
    const inbound = wasmFilters(envoy).filter((f) => f.configuration.direction === "inbound");
    expect(inbound.map((f) => f.listener)).toEqual(["inbound"]);
    expect(inbound[0].configuration.stack).toBe("mirror");
  });

  it("the test Envoy mirrors its ingress to the mirror Envoy's inbound listener", () => {
    const envoy = loadYaml(join(SANDBOX, "envoy-test.yaml"));
    const ingress = hcms(envoy).find((h) => h.listener.name === "ingress")!;
    const route = ingress.hcm.route_config.virtual_hosts[0].routes[0].route;
    expect(route.request_mirror_policies.map((m: Obj) => m.cluster)).toEqual(["mirror_ingress"]);
    const mirrorCluster = envoy.static_resources.clusters.find((c: Obj) => c.name === "mirror_ingress");
    const addr = mirrorCluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    const mirrorEnvoy = loadYaml(join(SANDBOX, "envoy-mirror.yaml"));
    const inbound = mirrorEnvoy.static_resources.listeners.find((l: Obj) => l.name === "inbound");
    expect(addr).toEqual({ address: "envoy-mirror", port_value: inbound.address.socket_address.port_value });
  });
});

describe("envoy/sandbox docker-compose.yaml", () => {
  const services = compose.services as Obj;

  it("has the two Envoys, mirror-cache, the upstream, the metadata stand-in and both apps", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["app-mirror", "app-test", "envoy-mirror", "envoy-test", "metadata", "mirror-cache", "upstream"].sort(),
    );
  });

  it("uses the official Envoy image pinned to a tag >= 1.35", () => {
    for (const e of ENVOYS) {
      const m = /^envoyproxy\/envoy:v(\d+)\.(\d+)\.(\d+)$/.exec(services[e.service].image);
      expect(m, services[e.service].image).not.toBeNull();
      const [maj, min] = [Number(m![1]), Number(m![2])];
      expect(maj > 1 || (maj === 1 && min >= 35)).toBe(true);
      expect(mountTarget(services[e.service], `./${e.file}`)).toBe("/etc/envoy/envoy.yaml");
      expect(services[e.service].command).toEqual(expect.arrayContaining(["-c", "/etc/envoy/envoy.yaml"]));
    }
  });

  it("builds mirror-cache from the repository's Dockerfile", () => {
    const b = services["mirror-cache"].build;
    expect(resolve(SANDBOX, b.context)).toBe(ROOT);
    expect(existsSync(join(ROOT, b.dockerfile))).toBe(true);
  });

  it("every volume source exists (build/filter.wasm is the build output)", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const v of (s as Obj).volumes ?? []) {
        const src = String(v).split(":")[0];
        const abs = resolve(SANDBOX, src);
        if (abs === join(ROOT, "build", "filter.wasm")) continue;
        expect(existsSync(abs), `${name}: ${src}`).toBe(true);
      }
    }
  });

  it("every Envoy cluster endpoint is a compose service on the port it listens on", () => {
    const listenPort = (svc: string): number => Number(services[svc].environment?.PORT);
    for (const e of ENVOYS) {
      const envoy = loadYaml(join(SANDBOX, e.file));
      for (const c of envoy.static_resources.clusters) {
        for (const ep of c.load_assignment.endpoints.flatMap((x: Obj) => x.lb_endpoints)) {
          const { address, port_value } = ep.endpoint.address.socket_address;
          expect(services[address], `${e.file} cluster ${c.name} -> ${address}`).toBeDefined();
          if (address.startsWith("envoy-")) {
            const other = loadYaml(join(SANDBOX, ENVOYS.find((x) => x.service === address)!.file));
            const ports = other.static_resources.listeners.map((l: Obj) => l.address.socket_address.port_value);
            expect(ports).toContain(port_value);
          } else {
            expect(port_value, `${e.file} cluster ${c.name}`).toBe(listenPort(address));
          }
        }
      }
    }
  });

  it("each app's egress proxy is its own Envoy's egress listener", () => {
    for (const [app, envoySvc] of [["app-test", "envoy-test"], ["app-mirror", "envoy-mirror"]]) {
      const [host, port] = String(services[app].environment.EGRESS_PROXY).split(":");
      expect(host).toBe(envoySvc);
      const envoy = loadYaml(join(SANDBOX, ENVOYS.find((x) => x.service === envoySvc)!.file));
      const egress = envoy.static_resources.listeners.find((l: Obj) => l.name === "egress");
      expect(Number(port)).toBe(egress.address.socket_address.port_value);
    }
  });

  it("mirror-cache's environment matches the filters: headers, and timeouts that let the cache answer first", async () => {
    const env = services["mirror-cache"].environment;
    const { VARIABLES } = await import("../../service/config.ts");
    for (const k of Object.keys(env)) expect(Object.keys(VARIABLES), `unknown variable ${k}`).toContain(k);
    const test = wasmFilters(loadYaml(join(SANDBOX, "envoy-test.yaml")))[0].configuration;
    const mirror = wasmFilters(loadYaml(join(SANDBOX, "envoy-mirror.yaml"))).find((f) => f.listener === "egress")!.configuration;
    for (const c of [test, mirror]) {
      expect(c.stack_header ?? "x-mirror-stack").toBe(env.MIRROR_CACHE_STACK_HEADER);
      expect(c.request_id_header ?? "x-request-id").toBe(env.MIRROR_CACHE_REQUEST_ID_HEADER);
    }
    expect(mirror.timeout_ms).toBeGreaterThan(Number(env.MIRROR_CACHE_WAIT_MS));
    expect(test.timeout_ms).toBeGreaterThan(Number(env.MIRROR_CACHE_CONNECT_TIMEOUT_MS) + Number(env.MIRROR_CACHE_UPSTREAM_TIMEOUT_MS));
  });

  it("the apps' upstream and metadata hosts are routed by the egress listeners", () => {
    for (const e of ENVOYS) {
      const envoy = loadYaml(join(SANDBOX, e.file));
      const egress = hcms(envoy).find((h) => h.listener.name === "egress")!;
      const domains = egress.hcm.route_config.virtual_hosts.flatMap((v: Obj) => v.domains);
      expect(domains).toEqual(expect.arrayContaining(["upstream:9000", "169.254.169.254"]));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// verify.sh <-> README.md
// ---------------------------------------------------------------------------------------------

describe("envoy/sandbox/verify.sh", () => {
  const script = readText(join(SANDBOX, "verify.sh"));
  const readme = readText(join(SANDBOX, "README.md"));

  it("is valid bash (bash -n) and executable", () => {
    const r = spawnSync("bash", ["-n", join(SANDBOX, "verify.sh")], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const mode = spawnSync("test", ["-x", join(SANDBOX, "verify.sh")]);
    expect(mode.status).toBe(0);
  });

  it("always tears down, dumps logs on failure, stops on the first error", () => {
    expect(script).toMatch(/^set -euo pipefail$/m);
    expect(script).toMatch(/^trap cleanup EXIT$/m);
    expect(script).toMatch(/cleanup \(\) \{[\s\S]*dump_logs[\s\S]*docker compose down --volumes --remove-orphans/);
    for (const fn of ["run_log", "responds_with", "eventually_responds_with", "dump_logs"]) {
      expect(script).toMatch(new RegExp(`^${fn} \\(\\) \\{`, "m"));
    }
  });

  it("runs exactly the commands the README documents, and the README documents every command it runs", () => {
    const fromScript = new Set(verifyCommands(script));
    const fromReadme = new Set(readmeCommands(readme));
    expect(fromScript.size).toBeGreaterThan(10);
    expect([...fromReadme].filter((c) => !fromScript.has(c)), "README commands verify.sh does not run").toEqual([]);
    expect([...fromScript].filter((c) => !fromReadme.has(c)), "verify.sh commands the README does not show").toEqual([]);
  });

  it("runs the README's steps in the README's order", () => {
    const steps = (text: string, re: RegExp) => [...text.matchAll(re)].map((m) => m[1].trim());
    const readmeSteps = steps(readme, /^## (Step \d+: .*)$/gm);
    const scriptSteps = steps(script, /^run_log "(Step \d+: [^"]*)"/gm);
    expect(readmeSteps.length).toBeGreaterThan(5);
    expect(scriptSteps).toEqual(readmeSteps);
    // the first occurrence of each README command comes in the same order in verify.sh
    const firstIndex = (list: string[]) => [...new Set(list)];
    const order = firstIndex(verifyCommands(script)).filter((c) => readmeCommands(readme).includes(c));
    const readmeOrder = firstIndex(readmeCommands(readme)).filter((c) => order.includes(c));
    const setupAndTeardown = new Set(["docker compose ps", "docker compose logs --no-color", "docker compose down --volumes --remove-orphans"]);
    expect(order.filter((c) => !setupAndTeardown.has(c))).toEqual(readmeOrder.filter((c) => !setupAndTeardown.has(c)));
  });

  it("checks the answers the README promises", () => {
    for (const expected of [
      "call GET http://upstream:9000/quote 200 pass",
      "call GET http://upstream:9000/quote 200 hit",
      "call POST http://upstream:9000/orders 201 hit",
      "call GET http://upstream:9000/quote 503 unavailable",
      "host=localhost:10000",
      "tagged=0",
      "total=3",
    ]) {
      expect(readme, expected).toContain(expected);
      expect(script, expected).toContain(expected);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The sample app and upstream answer in the format verify.sh greps (run them for real here, with
// the app's egress proxy pointed straight at the upstream instead of an Envoy).
// ---------------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

async function waitHealthy(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never became healthy`);
}

describe("envoy/sandbox sample app and upstream", () => {
  const procs: ChildProcess[] = [];
  let upstreamPort = 0;
  let appPort = 0;

  beforeAll(async () => {
    upstreamPort = await freePort();
    appPort = await freePort();
    procs.push(spawn(process.execPath, [join(SANDBOX, "upstream", "server.mjs")], { env: { ...process.env, PORT: String(upstreamPort), ROLE: "upstream" }, stdio: "ignore" }));
    await waitHealthy(upstreamPort);
    procs.push(
      spawn(process.execPath, [join(SANDBOX, "app", "server.mjs")], {
        env: { ...process.env, PORT: String(appPort), STACK: "test", EGRESS_PROXY: `127.0.0.1:${upstreamPort}` },
        stdio: "ignore",
      }),
    );
    await waitHealthy(appPort);
  });

  afterAll(() => {
    for (const p of procs) p.kill("SIGTERM");
  });

  it("GET /api/quote: calls the upstream through the proxy (absolute-form) and records it in /__seen", async () => {
    const r = await fetch(`http://127.0.0.1:${appPort}/api/quote`, { headers: { "x-request-id": "unit-1" } });
    expect(r.status).toBe(200);
    const body = await r.text();
    expect(body).toContain('"quote"');
    const seen = await (await fetch(`http://127.0.0.1:${appPort}/__seen/unit-1`)).text();
    expect(seen).toContain("stack=test");
    expect(seen).toMatch(/^host=127\.0\.0\.1:\d+$/m);
    expect(seen).toContain("call GET http://upstream:9000/quote 200 -");
    // here the "metadata" call reaches the upstream role, which does not serve it
    expect(seen).toContain("call GET http://169.254.169.254/latest/meta-data/instance-id 404 -");
    const { createHash } = await import("node:crypto");
    expect(seen).toContain(`body_sha256=${createHash("sha256").update(body).digest("hex")}`);
  });

  it("POST /api/orders forwards the body; the upstream counts calls in /__stats", async () => {
    const r = await fetch(`http://127.0.0.1:${appPort}/api/orders`, {
      method: "POST",
      headers: { "x-request-id": "unit-2", "content-type": "application/json" },
      body: '{"item":"book","qty":1}',
    });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('"received":{"item":"book","qty":1}');
    const seen = await (await fetch(`http://127.0.0.1:${appPort}/__seen/unit-2`)).text();
    expect(seen).toContain("call POST http://upstream:9000/orders 201 -");
    const stats = await (await fetch(`http://127.0.0.1:${upstreamPort}/__stats`)).text();
    expect(stats).toMatch(/^total=3$/m); // quote + metadata (404) + order
    expect(stats).toMatch(/^tagged=0$/m);
  });

  it("refuses a request without x-request-id", async () => {
    const r = await fetch(`http://127.0.0.1:${appPort}/api/quote`);
    expect(r.status).toBe(400);
  });
});
