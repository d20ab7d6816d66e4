// Configuration: read once from the environment and, optionally, a JSON file named by
// MIRROR_CACHE_CONFIG (keys are the variable names below; the environment wins). Every problem is
// reported — not just the first — each naming the variable, what was wrong and how to fix it.
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { parseRule } from "./egress.ts";
import type { Stack } from "./store/types.ts";

export interface IdentityRule {
  /** Kubernetes namespace, when the rule names one. */
  ns?: string;
  /** Service account, when the rule names one. */
  sa?: string;
  stack: Stack;
  text: string;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly store: "memory" | "redis";
  readonly redisUrl: string | undefined;
  readonly waitMs: number;
  readonly ttlMs: number;
  readonly maxBytes: number;
  /** Lower-case. */
  readonly stackHeader: string;
  readonly stackValues: Readonly<Record<Stack, string>>;
  /** Lower-case. */
  readonly requestIdHeader: string;
  readonly egressAllow: readonly string[];
  readonly egressDeny: readonly string[];
  readonly egressAllowOnly: boolean;
  readonly maxBodyBytes: number;
  readonly maxResponseBytes: number;
  readonly connectTimeoutMs: number;
  readonly upstreamTimeoutMs: number;
  /** Lower-case names, `*.suffix` allowed. */
  readonly httpsHosts: readonly string[];
  readonly tlsCaFile: string | undefined;
  /** Trusted CAs for TLS origination: the system's plus MIRROR_CACHE_TLS_CA_FILE's. */
  readonly tlsCa: readonly string[] | undefined;
  readonly keyIgnoreQuery: readonly string[];
  readonly identity: readonly IdentityRule[];
  readonly shutdownTimeoutMs: number;
  readonly logLevel: string;
  readonly configFile: string | undefined;
}

export class ConfigError extends Error {
  readonly errors: readonly string[];
  constructor(errors: string[]) {
    super(`invalid configuration:\n  - ${errors.join("\n  - ")}`);
    this.name = "ConfigError";
    this.errors = Object.freeze(errors);
  }
}

interface VarSpec {
  def: string | undefined;
  /** For the README table and `--help`-like listings. */
  doc: string;
}

/** Every variable the service reads, with its default. README's environment table lists them. */
export const VARIABLES: Readonly<Record<string, VarSpec>> = Object.freeze({
  PORT: { def: "8080", doc: "listen port" },
  HOST: { def: "0.0.0.0", doc: "listen address" },
  MIRROR_CACHE_CONFIG: { def: undefined, doc: "path of a JSON file whose keys are these variable names; the environment wins" },
  MIRROR_CACHE_STORE: { def: "memory", doc: "`memory` or `redis`" },
  REDIS_URL: { def: undefined, doc: "`redis://` or `rediss://` URL; required with `MIRROR_CACHE_STORE=redis`" },
  MIRROR_CACHE_WAIT_MS: { def: "10000", doc: "how long a mirror call waits for its test call" },
  MIRROR_CACHE_TTL_MS: { def: "60000", doc: "how long a record (and a call counter) lives" },
  MIRROR_CACHE_MAX_BYTES: { def: "268435456", doc: "memory store byte budget (LRU eviction beyond it)" },
  MIRROR_CACHE_STACK_HEADER: { def: "x-mirror-stack", doc: "stack header name" },
  MIRROR_CACHE_STACK_VALUES: { def: "test=test,mirror=mirror", doc: "its values, e.g. `test=false,mirror=true`" },
  MIRROR_CACHE_REQUEST_ID_HEADER: { def: "x-request-id", doc: "pairing key header" },
  MIRROR_CACHE_EGRESS_ALLOW: { def: "", doc: "comma-separated hosts/CIDRs allowed even though denied by default (e.g. `127.0.0.1/32` for local tests); a default-denied IP is only lifted by an IP/CIDR entry" },
  MIRROR_CACHE_EGRESS_DENY: { def: "", doc: "more hosts/CIDRs to refuse (wins over the allow list)" },
  MIRROR_CACHE_EGRESS_ALLOW_ONLY: { def: "false", doc: "`true`: refuse every destination not in `MIRROR_CACHE_EGRESS_ALLOW`" },
  MIRROR_CACHE_MAX_BODY_BYTES: { def: "1048576", doc: "largest request body (equal is allowed); larger → 413 `BODY_TOO_LARGE`" },
  MIRROR_CACHE_MAX_RESPONSE_BYTES: { def: "16777216", doc: "largest upstream response body recorded; larger → 502 `UPSTREAM_RESPONSE_TOO_LARGE`" },
  MIRROR_CACHE_CONNECT_TIMEOUT_MS: { def: "2000", doc: "upstream name resolution + connect (+ TLS handshake) timeout" },
  MIRROR_CACHE_UPSTREAM_TIMEOUT_MS: { def: "10000", doc: "upstream headers timeout, and the longest pause between body chunks" },
  MIRROR_CACHE_HTTPS_HOSTS: { def: "", doc: "comma-separated host names (`*.example.com` allowed) forwarded with TLS origination: `https://`, port from the authority, default 443" },
  MIRROR_CACHE_TLS_CA_FILE: { def: undefined, doc: "PEM file of extra CAs trusted for TLS origination (added to the system's)" },
  MIRROR_CACHE_KEY_IGNORE_QUERY: { def: "", doc: "comma-separated query parameter names left out of the call key (e.g. a timestamp or nonce)" },
  MIRROR_CACHE_IDENTITY: { def: "", doc: "caller identity → stack, from the SPIFFE URI in `x-forwarded-client-cert`: comma-separated `ns/NS=stack`, `sa/SA=stack` or `ns/NS/sa/SA=stack` (stack `test` or `mirror`), e.g. `ns/shop-test=test,sa/api-mirror=mirror`" },
  MIRROR_CACHE_SHUTDOWN_TIMEOUT_MS: { def: "30000", doc: "on SIGTERM/SIGINT, how long in-flight calls may drain before connections are cut" },
  LOG_LEVEL: { def: "info", doc: "`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`" },
});

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"]);

type Env = Record<string, string | undefined>;

function readFile(path: string, errors: string[]): Env {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    errors.push(`MIRROR_CACHE_CONFIG: cannot read "${path}" (${(e as Error).message}); point it at a readable JSON file or unset it`);
    return {};
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    errors.push(`MIRROR_CACHE_CONFIG: "${path}" is not valid JSON (${(e as Error).message}); fix the file`);
    return {};
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    errors.push(`MIRROR_CACHE_CONFIG: "${path}" must hold one JSON object whose keys are variable names, e.g. {"MIRROR_CACHE_WAIT_MS": 5000}`);
    return {};
  }
  const out: Env = {};
  for (const [k, v] of Object.entries(data)) {
    if (!(k in VARIABLES) || k === "MIRROR_CACHE_CONFIG") {
      errors.push(`MIRROR_CACHE_CONFIG: "${path}" has unknown key "${k}"; use one of ${Object.keys(VARIABLES).filter((x) => x !== "MIRROR_CACHE_CONFIG").join(", ")}`);
      continue;
    }
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === "string")) out[k] = v.join(",");
    else errors.push(`MIRROR_CACHE_CONFIG: key "${k}" in "${path}" must be a string, number, boolean or array of strings`);
  }
  return out;
}

function list(s: string): string[] {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

/** Read and validate the configuration. Throws ConfigError listing every problem. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const errors: string[] = [];
  const file = env.MIRROR_CACHE_CONFIG?.trim() || undefined;
  const fromFile = file ? readFile(file, errors) : {};

  const raw = (name: string): string | undefined => {
    const v = env[name] ?? fromFile[name];
    return v === undefined ? VARIABLES[name].def : v;
  };
  const str = (name: string): string => (raw(name) ?? "").trim();

  const int = (name: string, min: number, max: number, unit: string): number => {
    const s = str(name);
    const def = VARIABLES[name].def;
    if (!/^\d+$/.test(s)) {
      errors.push(`${name}: "${s}" is not a whole number; set it to ${unit} between ${min} and ${max} (default ${def})`);
      return Number(def);
    }
    const n = Number(s);
    if (n < min || n > max) {
      errors.push(`${name}: ${n} is out of range; set it to ${unit} between ${min} and ${max} (default ${def})`);
      return Number(def);
    }
    return n;
  };
  const bool = (name: string): boolean => {
    const s = str(name).toLowerCase();
    if (["true", "1", "yes", "on"].includes(s)) return true;
    if (["false", "0", "no", "off", ""].includes(s)) return false;
    errors.push(`${name}: "${s}" is not a boolean; set it to true or false`);
    return false;
  };
  const header = (name: string): string => {
    const s = str(name).toLowerCase();
    if (!TOKEN_RE.test(s)) {
      errors.push(`${name}: "${s}" is not a valid HTTP header name; use letters, digits and - (default ${VARIABLES[name].def})`);
      return VARIABLES[name].def!;
    }
    if (HOP_BY_HOP.has(s) || s.startsWith(":")) {
      errors.push(`${name}: "${s}" is a connection-level header the proxies rewrite; pick another name (default ${VARIABLES[name].def})`);
      return VARIABLES[name].def!;
    }
    return s;
  };

  const port = int("PORT", 0, 65535, "a TCP port");
  const host = str("HOST");
  if (!host) errors.push(`HOST: empty; set it to the address to listen on, e.g. 0.0.0.0 or ::`);

  const storeKind = str("MIRROR_CACHE_STORE").toLowerCase();
  if (storeKind !== "memory" && storeKind !== "redis")
    errors.push(`MIRROR_CACHE_STORE: "${storeKind}" is not a store; set it to memory or redis`);
  const redisUrl = str("REDIS_URL") || undefined;
  if (storeKind === "redis" && !redisUrl)
    errors.push(`REDIS_URL: missing while MIRROR_CACHE_STORE=redis; set it, e.g. redis://redis.mesh-mirror:6379`);
  if (redisUrl) {
    let ok = false;
    try {
      const u = new URL(redisUrl);
      ok = (u.protocol === "redis:" || u.protocol === "rediss:") && u.hostname.length > 0;
    } catch {
      ok = false;
    }
    if (!ok) errors.push(`REDIS_URL: "${redisUrl}" is not a redis:// or rediss:// URL with a host; e.g. redis://127.0.0.1:6379`);
  }

  const waitMs = int("MIRROR_CACHE_WAIT_MS", 0, 600_000, "milliseconds");
  const ttlMs = int("MIRROR_CACHE_TTL_MS", 1, 86_400_000, "milliseconds");
  const maxBytes = int("MIRROR_CACHE_MAX_BYTES", 1024, Number.MAX_SAFE_INTEGER, "bytes");
  const stackHeader = header("MIRROR_CACHE_STACK_HEADER");
  const requestIdHeader = header("MIRROR_CACHE_REQUEST_ID_HEADER");
  if (stackHeader === requestIdHeader)
    errors.push(`MIRROR_CACHE_REQUEST_ID_HEADER: "${requestIdHeader}" is also the stack header; the two must differ`);

  const stackValues: Record<Stack, string> = { test: "test", mirror: "mirror" };
  {
    const s = str("MIRROR_CACHE_STACK_VALUES");
    const seen = new Set<string>();
    let ok = true;
    for (const part of list(s)) {
      const eq = part.indexOf("=");
      const k = eq > 0 ? part.slice(0, eq).trim() : "";
      const v = eq > 0 ? part.slice(eq + 1).trim() : "";
      if ((k !== "test" && k !== "mirror") || !v || /[\s,]/.test(v) || seen.has(k)) {
        ok = false;
        break;
      }
      seen.add(k);
      stackValues[k] = v;
    }
    if (!ok || seen.size !== 2 || stackValues.test === stackValues.mirror) {
      errors.push(`MIRROR_CACHE_STACK_VALUES: "${s}" must give the test and the mirror value once each, different and non-empty, e.g. test=false,mirror=true`);
      stackValues.test = "test";
      stackValues.mirror = "mirror";
    }
  }

  const rules = (name: string): string[] => {
    const out: string[] = [];
    for (const t of list(str(name))) {
      if (!parseRule(t)) errors.push(`${name}: "${t}" is neither a host name nor an IP address or CIDR; write e.g. 10.0.0.0/8, ::1/128 or api.example.com`);
      else out.push(t);
    }
    return out;
  };
  const egressAllow = rules("MIRROR_CACHE_EGRESS_ALLOW");
  const egressDeny = rules("MIRROR_CACHE_EGRESS_DENY");
  const egressAllowOnly = bool("MIRROR_CACHE_EGRESS_ALLOW_ONLY");
  if (egressAllowOnly && egressAllow.length === 0)
    errors.push(`MIRROR_CACHE_EGRESS_ALLOW_ONLY: true with an empty MIRROR_CACHE_EGRESS_ALLOW would refuse every call; list the allowed hosts/CIDRs or set it to false`);

  const maxBodyBytes = int("MIRROR_CACHE_MAX_BODY_BYTES", 0, 1 << 30, "bytes");
  const maxResponseBytes = int("MIRROR_CACHE_MAX_RESPONSE_BYTES", 0, 1 << 30, "bytes");
  const connectTimeoutMs = int("MIRROR_CACHE_CONNECT_TIMEOUT_MS", 1, 600_000, "milliseconds");
  const upstreamTimeoutMs = int("MIRROR_CACHE_UPSTREAM_TIMEOUT_MS", 1, 3_600_000, "milliseconds");

  const httpsHosts: string[] = [];
  for (const t of list(str("MIRROR_CACHE_HTTPS_HOSTS"))) {
    const r = parseRule(t);
    if (!r || r.kind !== "name") errors.push(`MIRROR_CACHE_HTTPS_HOSTS: "${t}" is not a host name; write e.g. api.stripe.com or *.googleapis.com (no scheme, no port)`);
    else httpsHosts.push(r.wildcard ? `*${r.name}` : r.name);
  }

  const tlsCaFile = str("MIRROR_CACHE_TLS_CA_FILE") || undefined;
  let tlsCa: string[] | undefined;
  if (tlsCaFile) {
    try {
      const pem = readFileSync(tlsCaFile, "utf8");
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
        errors.push(`MIRROR_CACHE_TLS_CA_FILE: "${tlsCaFile}" holds no PEM certificate; point it at a PEM CA bundle`);
      } else tlsCa = [...rootCertificates, pem];
    } catch (e) {
      errors.push(`MIRROR_CACHE_TLS_CA_FILE: cannot read "${tlsCaFile}" (${(e as Error).message}); point it at a readable PEM file or unset it`);
    }
  }

  const keyIgnoreQuery = list(str("MIRROR_CACHE_KEY_IGNORE_QUERY"));

  const identity: IdentityRule[] = [];
  for (const part of list(str("MIRROR_CACHE_IDENTITY"))) {
    const eq = part.lastIndexOf("=");
    const lhs = eq > 0 ? part.slice(0, eq).trim() : "";
    const stack = eq > 0 ? part.slice(eq + 1).trim() : "";
    const m = /^(?:ns\/([^/\s=]+)(?:\/sa\/([^/\s=]+))?|sa\/([^/\s=]+))$/.exec(lhs);
    if (!m || (stack !== "test" && stack !== "mirror")) {
      errors.push(`MIRROR_CACHE_IDENTITY: "${part}" is not ns/NAMESPACE=stack, sa/SERVICE_ACCOUNT=stack or ns/NAMESPACE/sa/SERVICE_ACCOUNT=stack with stack test or mirror; e.g. ns/shop-test=test,sa/api-mirror=mirror`);
      continue;
    }
    identity.push(Object.freeze({ ns: m[1], sa: m[2] ?? m[3], stack: stack as Stack, text: part }));
  }
  {
    const seen = new Map<string, Stack>();
    for (const r of identity) {
      const k = `${r.ns ?? ""}/${r.sa ?? ""}`;
      const prev = seen.get(k);
      if (prev && prev !== r.stack) errors.push(`MIRROR_CACHE_IDENTITY: "${r.text}" maps an identity already mapped to ${prev}; each identity maps to one stack, remove one of them`);
      seen.set(k, r.stack);
    }
  }

  const shutdownTimeoutMs = int("MIRROR_CACHE_SHUTDOWN_TIMEOUT_MS", 0, 3_600_000, "milliseconds");
  const logLevel = str("LOG_LEVEL").toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`LOG_LEVEL: "${logLevel}" is not a level; use one of ${LOG_LEVELS.join(", ")}`);

  if (errors.length > 0) throw new ConfigError(errors);

  return Object.freeze({
    port,
    host,
    store: storeKind as "memory" | "redis",
    redisUrl,
    waitMs,
    ttlMs,
    maxBytes,
    stackHeader,
    stackValues: Object.freeze(stackValues),
    requestIdHeader,
    egressAllow: Object.freeze(egressAllow),
    egressDeny: Object.freeze(egressDeny),
    egressAllowOnly,
    maxBodyBytes,
    maxResponseBytes,
    connectTimeoutMs,
    upstreamTimeoutMs,
    httpsHosts: Object.freeze(httpsHosts),
    tlsCaFile,
    tlsCa: tlsCa ? Object.freeze(tlsCa) : undefined,
    keyIgnoreQuery: Object.freeze(keyIgnoreQuery),
    identity: Object.freeze(identity),
    shutdownTimeoutMs,
    logLevel,
    configFile: file,
  });
}

/** MIRROR_CACHE_* variables in `env` that the service does not know (likely typos). */
export function unknownVariables(env: Env = process.env): string[] {
  return Object.keys(env).filter((k) => k.startsWith("MIRROR_CACHE_") && !(k in VARIABLES));
}
