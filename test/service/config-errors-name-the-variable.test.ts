import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, VARIABLES } from "../../service/config.ts";

function errorsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).errors;
  }
  return [];
}

describe("config-errors-name-the-variable", () => {
  it("defaults match CONTRACTS.md", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: "0.0.0.0",
      store: "memory",
      waitMs: 10000,
      ttlMs: 60000,
      maxBytes: 268435456,
      stackHeader: "x-mirror-stack",
      stackValues: { test: "test", mirror: "mirror" },
      requestIdHeader: "x-request-id",
      egressAllow: [],
      egressDeny: [],
      maxBodyBytes: 1048576,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.stackValues)).toBe(true);
  });

  it("reads every variable", () => {
    const c = loadConfig({
      PORT: "9000",
      HOST: "::",
      MIRROR_CACHE_STORE: "redis",
      REDIS_URL: "redis://r:6379",
      MIRROR_CACHE_STACK_HEADER: "X-Azar-Mirror",
      MIRROR_CACHE_STACK_VALUES: "test=false,mirror=true",
      MIRROR_CACHE_EGRESS_ALLOW: "127.0.0.1/32, api.example.com",
      MIRROR_CACHE_HTTPS_HOSTS: "api.stripe.com,*.googleapis.com",
      MIRROR_CACHE_IDENTITY: "ns/shop-test=test,sa/api-mirror=mirror",
      MIRROR_CACHE_KEY_IGNORE_QUERY: "ts",
    });
    expect(c.stackHeader).toBe("x-azar-mirror");
    expect(c.stackValues).toEqual({ test: "false", mirror: "true" });
    expect(c.egressAllow).toEqual(["127.0.0.1/32", "api.example.com"]);
    expect(c.httpsHosts).toEqual(["api.stripe.com", "*.googleapis.com"]);
    expect(c.identity.map((r) => r.stack)).toEqual(["test", "mirror"]);
  });

  const table: Array<[string, Record<string, string>]> = [
    ["PORT", { PORT: "http" }],
    ["PORT", { PORT: "70000" }],
    ["HOST", { HOST: " " }],
    ["MIRROR_CACHE_STORE", { MIRROR_CACHE_STORE: "disk" }],
    ["REDIS_URL", { MIRROR_CACHE_STORE: "redis" }],
    ["REDIS_URL", { REDIS_URL: "http://redis:6379" }],
    ["MIRROR_CACHE_WAIT_MS", { MIRROR_CACHE_WAIT_MS: "10s" }],
    ["MIRROR_CACHE_WAIT_MS", { MIRROR_CACHE_WAIT_MS: "-1" }],
    ["MIRROR_CACHE_TTL_MS", { MIRROR_CACHE_TTL_MS: "0" }],
    ["MIRROR_CACHE_MAX_BYTES", { MIRROR_CACHE_MAX_BYTES: "1e9" }],
    ["MIRROR_CACHE_STACK_HEADER", { MIRROR_CACHE_STACK_HEADER: "x mirror" }],
    ["MIRROR_CACHE_STACK_HEADER", { MIRROR_CACHE_STACK_HEADER: "connection" }],
    ["MIRROR_CACHE_STACK_VALUES", { MIRROR_CACHE_STACK_VALUES: "test=a" }],
    ["MIRROR_CACHE_STACK_VALUES", { MIRROR_CACHE_STACK_VALUES: "test=a,mirror=a" }],
    ["MIRROR_CACHE_STACK_VALUES", { MIRROR_CACHE_STACK_VALUES: "prod=a,mirror=b" }],
    ["MIRROR_CACHE_REQUEST_ID_HEADER", { MIRROR_CACHE_REQUEST_ID_HEADER: "" }],
    ["MIRROR_CACHE_REQUEST_ID_HEADER", { MIRROR_CACHE_REQUEST_ID_HEADER: "x-mirror-stack" }],
    ["MIRROR_CACHE_EGRESS_ALLOW", { MIRROR_CACHE_EGRESS_ALLOW: "10.0.0.0/33" }],
    ["MIRROR_CACHE_EGRESS_DENY", { MIRROR_CACHE_EGRESS_DENY: "http://x/" }],
    ["MIRROR_CACHE_EGRESS_ALLOW_ONLY", { MIRROR_CACHE_EGRESS_ALLOW_ONLY: "maybe" }],
    ["MIRROR_CACHE_EGRESS_ALLOW_ONLY", { MIRROR_CACHE_EGRESS_ALLOW_ONLY: "true" }],
    ["MIRROR_CACHE_MAX_BODY_BYTES", { MIRROR_CACHE_MAX_BODY_BYTES: "1MB" }],
    ["MIRROR_CACHE_MAX_RESPONSE_BYTES", { MIRROR_CACHE_MAX_RESPONSE_BYTES: "x" }],
    ["MIRROR_CACHE_CONNECT_TIMEOUT_MS", { MIRROR_CACHE_CONNECT_TIMEOUT_MS: "0" }],
    ["MIRROR_CACHE_UPSTREAM_TIMEOUT_MS", { MIRROR_CACHE_UPSTREAM_TIMEOUT_MS: "1.5" }],
    ["MIRROR_CACHE_HTTPS_HOSTS", { MIRROR_CACHE_HTTPS_HOSTS: "https://api.stripe.com" }],
    ["MIRROR_CACHE_TLS_CA_FILE", { MIRROR_CACHE_TLS_CA_FILE: "/nonexistent/ca.pem" }],
    ["MIRROR_CACHE_IDENTITY", { MIRROR_CACHE_IDENTITY: "shop-test=test" }],
    ["MIRROR_CACHE_IDENTITY", { MIRROR_CACHE_IDENTITY: "ns/shop=prod" }],
    ["MIRROR_CACHE_IDENTITY", { MIRROR_CACHE_IDENTITY: "ns/shop=test,ns/shop=mirror" }],
    ["MIRROR_CACHE_SHUTDOWN_TIMEOUT_MS", { MIRROR_CACHE_SHUTDOWN_TIMEOUT_MS: "soon" }],
    ["LOG_LEVEL", { LOG_LEVEL: "verbose" }],
    ["MIRROR_CACHE_CONFIG", { MIRROR_CACHE_CONFIG: "/nonexistent/config.json" }],
  ];

  it.each(table)("%s: %j is refused with an error that names it and says how to fix it", (name, env) => {
    const errors = errorsOf(env);
    expect(errors).toHaveLength(1);
    expect(errors[0].startsWith(`${name}: `)).toBe(true);
    expect(errors[0]).toMatch(/set it|use |write |e\.g\.|point it|pick |list |must|fix|remove/);
  });

  it("every variable of the table is a known variable", () => {
    for (const [name] of table) expect(VARIABLES).toHaveProperty(name);
  });

  it("reports every problem at once", () => {
    const errors = errorsOf({ PORT: "x", MIRROR_CACHE_WAIT_MS: "y", LOG_LEVEL: "z" });
    expect(errors.map((e) => e.split(":")[0])).toEqual(["PORT", "MIRROR_CACHE_WAIT_MS", "LOG_LEVEL"]);
  });

  describe("MIRROR_CACHE_CONFIG file", () => {
    const dir = mkdtempSync(join(tmpdir(), "mirror-cache-config-"));
    const file = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    it("is read, and the environment wins over it", () => {
      const p = file("ok.json", JSON.stringify({ MIRROR_CACHE_WAIT_MS: 1234, MIRROR_CACHE_TTL_MS: "5000", MIRROR_CACHE_EGRESS_ALLOW: ["127.0.0.1/32", "10.0.0.0/8"] }));
      const c = loadConfig({ MIRROR_CACHE_CONFIG: p, MIRROR_CACHE_TTL_MS: "7000" });
      expect(c.waitMs).toBe(1234);
      expect(c.ttlMs).toBe(7000);
      expect(c.egressAllow).toEqual(["127.0.0.1/32", "10.0.0.0/8"]);
    });
    it.each([
      ["invalid JSON", "{ nope", /not valid JSON/],
      ["an array", "[1]", /one JSON object/],
      ["an unknown key", JSON.stringify({ MIRROR_CACHE_WAITMS: 1 }), /unknown key "MIRROR_CACHE_WAITMS"/],
      ["a nested object", JSON.stringify({ MIRROR_CACHE_WAIT_MS: { a: 1 } }), /must be a string/],
    ])("%s is refused naming MIRROR_CACHE_CONFIG", (_what, text, re) => {
      const errors = errorsOf({ MIRROR_CACHE_CONFIG: file(`${Math.random()}.json`, text) });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^MIRROR_CACHE_CONFIG: /);
      expect(errors[0]).toMatch(re);
    });
    it("a bad value from the file names the variable", () => {
      const errors = errorsOf({ MIRROR_CACHE_CONFIG: file("bad.json", JSON.stringify({ MIRROR_CACHE_WAIT_MS: "soon" })) });
      expect(errors[0]).toMatch(/^MIRROR_CACHE_WAIT_MS: /);
    });
  });

  it("server.ts prints every error and exits non-zero without listening", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "service/server.ts"], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { ...process.env, PORT: "not-a-port", MIRROR_CACHE_STORE: "redis", REDIS_URL: "", LOG_LEVEL: "loud" },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    expect(r.stderr).toContain("PORT: ");
    expect(r.stderr).toContain("REDIS_URL: ");
    expect(r.stderr).toContain("LOG_LEVEL: ");
  });
});
