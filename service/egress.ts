// Egress policy: which destinations a test call may be forwarded to. Checked on the RESOLVED
// address at connect time (see `egressConnector`), so a name that resolves to a metadata or
// loopback address — or starts to, DNS rebinding — is refused exactly like the literal would be.
//
// Order of the checks, for a destination (name, resolved IP, port):
//   1. the service's own listen address and port: refused, always (no loops);
//   2. MIRROR_CACHE_EGRESS_DENY (names or CIDRs): refused;
//   3. an IP/CIDR entry of MIRROR_CACHE_EGRESS_ALLOW covering the IP: allowed;
//   4. the default denies (loopback, link-local incl. every metadata address, unspecified, the
//      metadata names): refused — an allow-listed NAME does not lift these, only an IP/CIDR does;
//   5. MIRROR_CACHE_EGRESS_ALLOW_ONLY: refused unless the name or IP is in the allow list;
//   6. allowed.
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { buildConnector } from "undici";

// ---------------------------------------------------------------------------------------------
// Addresses

export interface ParsedIp {
  /** 4 or 16 bytes; IPv4-mapped / -compatible / NAT64 IPv6 addresses are reduced to IPv4. */
  bytes: Uint8Array;
  v: 4 | 6;
}

function parseIPv4Bytes(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIPv6Bytes(input: string): Uint8Array | null {
  let s = input;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (isIP(s) !== 6) return null;
  let tail: Uint8Array | null = null;
  const lastColon = s.lastIndexOf(":");
  if (s.indexOf(".", lastColon) >= 0) {
    tail = parseIPv4Bytes(s.slice(lastColon + 1));
    if (!tail) return null;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  const head = halves[0] ? halves[0].split(":") : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
  const groups = new Array<number>(8).fill(0);
  for (let i = 0; i < head.length; i++) groups[i] = parseInt(head[i], 16);
  for (let i = 0; i < rest.length; i++) groups[8 - rest.length + i] = parseInt(rest[i], 16);
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

function allZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parse an IP literal (IPv6 may be bracketed or carry a zone). IPv4-mapped (`::ffff:a.b.c.d`),
 * IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses count as the IPv4
 * address they carry. */
export function parseIp(input: string): ParsedIp | null {
  let s = input.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const v4 = isIP(s) === 4 ? parseIPv4Bytes(s) : null;
  if (v4) return { v: 4, bytes: v4 };
  const b = parseIPv6Bytes(s);
  if (!b) return null;
  const mapped = allZero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff;
  const compat = allZero(b, 0, 12) && !allZero(b, 12, 15); // not :: or ::1
  const nat64 = b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && allZero(b, 4, 12);
  if (mapped || compat || nat64) return { v: 4, bytes: b.slice(12) };
  return { v: 6, bytes: b };
}

export function formatIp(ip: ParsedIp): string {
  if (ip.v === 4) return ip.bytes.join(".");
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((ip.bytes[i] << 8) | ip.bytes[i + 1]).toString(16));
  return g.join(":");
}

export interface Cidr {
  v: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  text: string;
}

/** `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; null when not an address or CIDR. */
export function parseCidr(text: string): Cidr | null {
  const t = text.trim();
  const slash = t.indexOf("/");
  const addr = slash >= 0 ? t.slice(0, slash) : t;
  const ip = parseIp(addr);
  if (!ip) return null;
  const max = ip.v === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    // An IPv4-mapped CIDR written in IPv6 (::ffff:10.0.0.0/104) is an IPv4 CIDR.
    const rawV6 = isIP(addr.replace(/^\[|\]$/g, "")) === 6;
    if (rawV6 && ip.v === 4) prefix -= 96;
    if (prefix < 0 || prefix > max) return null;
  }
  return { v: ip.v, bytes: ip.bytes, prefix, text: t };
}

export function cidrContains(c: Cidr, ip: ParsedIp): boolean {
  if (c.v !== ip.v) return false;
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== ip.bytes[i]) return false;
  const bits = c.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (c.bytes[full] & mask) === (ip.bytes[full] & mask);
}

/** Lower-case, no trailing dot, no brackets. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

const HOSTNAME_RE = /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/;

/** A rule entry: an IP, a CIDR, a host name or `*.suffix`. Null when it is none of these. */
export type Rule = { kind: "cidr"; cidr: Cidr } | { kind: "name"; name: string; wildcard: boolean };

export function parseRule(text: string): Rule | null {
  const cidr = parseCidr(text);
  if (cidr) return { kind: "cidr", cidr };
  const name = normalizeHost(text);
  if (!name || !HOSTNAME_RE.test(name) || name.length > 253) return null;
  if (name.startsWith("*.")) return { kind: "name", name: name.slice(1), wildcard: true };
  return { kind: "name", name, wildcard: false };
}

function nameMatches(rules: Rule[], host: string): boolean {
  for (const r of rules) {
    if (r.kind !== "name") continue;
    if (r.wildcard ? host.endsWith(r.name) : host === r.name) return true;
  }
  return false;
}

function ipMatches(rules: Rule[], ip: ParsedIp): Rule | undefined {
  for (const r of rules) if (r.kind === "cidr" && cidrContains(r.cidr, ip)) return r;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Policy

/** Always refused unless an IP/CIDR allow entry covers them. Every metadata address of
 * CONTRACTS.md is in here (169.254.169.254 and 169.254.170.2 through 169.254/16). */
export const DEFAULT_DENY_CIDRS: readonly string[] = Object.freeze([
  "0.0.0.0/8", // unspecified / "this network"
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local: 169.254.169.254 (AWS, GCP, Azure, kube2iam), 169.254.170.2 (ECS)
  "100.100.100.200/32", // Alibaba Cloud metadata
  "255.255.255.255/32", // broadcast
  "::/128", // unspecified
  "::1/128", // loopback
  "fe80::/10", // link-local
  "fd00:ec2::254/128", // AWS metadata over IPv6
]);

export const DEFAULT_DENY_NAMES: readonly string[] = Object.freeze([
  "metadata.google.internal",
  "metadata.goog",
  "localhost",
  "*.localhost",
]);

export interface EgressSettings {
  allow: readonly string[];
  deny: readonly string[];
  allowOnly: boolean;
}

export interface SelfAddress {
  port: number;
  /** Addresses that reach this process. */
  ips: ParsedIp[];
}

export interface Denial {
  reason: string;
}

export class EgressDeniedError extends Error {
  readonly code = "EGRESS_DENIED";
  constructor(message: string) {
    super(message);
    this.name = "EgressDeniedError";
  }
}

/** The addresses that reach a server listening on `host`: for an unspecified address, every
 * local interface address plus loopback; otherwise `host` itself (plus the unspecified address,
 * which connects locally). */
export function selfAddresses(host: string, port: number): SelfAddress {
  const ips: ParsedIp[] = [];
  const add = (s: string) => {
    const p = parseIp(s);
    if (p) ips.push(p);
  };
  add("0.0.0.0");
  add("::");
  const h = parseIp(host);
  if (!h || allZero(h.bytes, 0, h.bytes.length)) {
    add("127.0.0.1");
    add("::1");
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) add(a.address);
  } else {
    ips.push(h);
  }
  return { port, ips };
}

export class EgressPolicy {
  private readonly allow: Rule[];
  private readonly deny: Rule[];
  private readonly defaults: Rule[];
  private readonly allowOnly: boolean;
  private readonly self: () => SelfAddress | undefined;

  constructor(settings: EgressSettings, self: () => SelfAddress | undefined) {
    const parse = (list: readonly string[], what: string) =>
      list.map((t) => {
        const r = parseRule(t);
        if (!r) throw new TypeError(`${what}: "${t}" is neither a host name nor an IP address or CIDR`);
        return r;
      });
    this.allow = parse(settings.allow, "MIRROR_CACHE_EGRESS_ALLOW");
    this.deny = parse(settings.deny, "MIRROR_CACHE_EGRESS_DENY");
    this.defaults = parse([...DEFAULT_DENY_CIDRS, ...DEFAULT_DENY_NAMES], "default deny");
    this.allowOnly = settings.allowOnly;
    this.self = self;
  }

  /** Checks on the name alone, before resolving. Null when the name may be resolved. */
  checkName(hostname: string): Denial | null {
    const host = normalizeHost(hostname);
    if (nameMatches(this.deny, host)) return { reason: `${host} is in MIRROR_CACHE_EGRESS_DENY` };
    if (nameMatches(this.defaults, host) && !nameMatches(this.allow, host))
      return { reason: `${host} is a metadata / local name, denied by default` };
    return null;
  }

  /** Checks a resolved (or literal) address. `hostname` is the name it came from, if any. */
  checkIp(address: string, port: number, hostname?: string): Denial | null {
    const ip = parseIp(address);
    if (!ip) return { reason: `${address} is not an IP address` };
    const shown = hostname && normalizeHost(hostname) !== normalizeHost(address) ? `${hostname} (${formatIp(ip)})` : formatIp(ip);
    const self = this.self();
    if (self && port === self.port) {
      for (const own of self.ips)
        if (own.v === ip.v && own.bytes.every((b, i) => b === ip.bytes[i]))
          return { reason: `${shown}:${port} is the service's own address` };
    }
    const denied = ipMatches(this.deny, ip);
    if (denied) return { reason: `${shown} is in MIRROR_CACHE_EGRESS_DENY (${(denied as { cidr: Cidr }).cidr.text})` };
    if (ipMatches(this.allow, ip)) return null;
    const def = ipMatches(this.defaults, ip);
    if (def)
      return {
        reason: `${shown} is a loopback, link-local, metadata or unspecified address (${(def as { cidr: Cidr }).cidr.text}), denied by default; allow it with an IP/CIDR in MIRROR_CACHE_EGRESS_ALLOW`,
      };
    if (this.allowOnly && !(hostname && nameMatches(this.allow, normalizeHost(hostname))))
      return { reason: `${shown} is not in MIRROR_CACHE_EGRESS_ALLOW (MIRROR_CACHE_EGRESS_ALLOW_ONLY is on)` };
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Resolution and connection

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Name → addresses. Default: dns.lookup (what the OS would use). Injectable for tests. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export type Connector = buildConnector.connector;

export interface EgressConnectorOptions {
  policy: EgressPolicy;
  resolve: Resolver;
  /** The socket-level connector that actually connects (undici's buildConnector by default). It
   * is only ever called with an IP address that passed the policy. */
  connect: Connector;
  /** Bound on name resolution (the socket connect has its own timeout in `connect`). */
  resolveTimeoutMs: number;
  onDenied?: (reason: string) => void;
}

export class ResolveTimeoutError extends Error {
  readonly code = "UND_ERR_CONNECT_TIMEOUT";
  constructor(host: string, ms: number) {
    super(`resolving ${host} took longer than ${ms} ms`);
    this.name = "ResolveTimeoutError";
  }
}

/** An undici `connect` function: resolve, check every address, then connect to the checked IP
 * (never to the name, so the socket can't land on an address that was not checked). */
export function egressConnector(o: EgressConnectorOptions): Connector {
  const { policy, resolve, connect, resolveTimeoutMs, onDenied } = o;
  const deny = (reason: string, cb: buildConnector.Callback) => {
    onDenied?.(reason);
    cb(new EgressDeniedError(reason), null);
  };
  return (opts, cb) => {
    const hostname = opts.hostname.startsWith("[") ? opts.hostname.slice(1, -1) : opts.hostname;
    const port = Number(opts.port) || (opts.protocol === "https:" ? 443 : 80);
    if (isIP(hostname)) {
      const d = policy.checkIp(hostname, port);
      if (d) return deny(d.reason, cb);
      return connect({ ...opts, hostname }, cb);
    }
    const dn = policy.checkName(hostname);
    if (dn) return deny(dn.reason, cb);
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      cb(new ResolveTimeoutError(hostname, resolveTimeoutMs), null);
    }, resolveTimeoutMs);
    resolve(hostname).then(
      (addrs) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (addrs.length === 0) {
          const e = Object.assign(new Error(`${hostname} resolved to no address`), { code: "ENOTFOUND" });
          return cb(e, null);
        }
        // One bad address refuses the name: a name that resolves to both a public and a
        // metadata address is not one to trust.
        for (const a of addrs) {
          const d = policy.checkIp(a.address, port, hostname);
          if (d) return deny(d.reason, cb);
        }
        connect({ ...opts, hostname: addrs[0].address, servername: opts.servername || hostname }, cb);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        cb(err instanceof Error ? err : new Error(String(err)), null);
      },
    );
  };
}
