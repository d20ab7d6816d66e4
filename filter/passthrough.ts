// Which destinations pass untouched: the built-in cloud metadata endpoints, configured hosts,
// IPs and CIDRs, and the cache service itself. Matching ignores a port, IPv6 brackets, letter
// case and a trailing dot, and treats an IPv4-mapped IPv6 address as its IPv4 address.
// IPv4 is read strictly (four decimal parts, no leading zeros, as inet_pton does); odd forms
// such as "0251.0376.0251.0376" are caught by the destination.address check instead.
import { asciiLowerCase } from "./abi/bytes";

export const BUILTIN_PASSTHROUGH: string[] = [
  "169.254.169.254", "169.254.170.2", "fd00:ec2::254",
  "metadata.google.internal", "metadata.goog", "100.100.100.200",
];

/** An IP address: IPv4 in the low 32 bits of `lo` (v6 false), or IPv6 as two 64-bit halves. */
export class Ip {
  constructor(public v6: bool, public hi: u64, public lo: u64) {}
}

/** A network: an address plus a prefix length (32 or 128 for a single address). */
class Net {
  constructor(public ip: Ip, public bits: i32) {}

  contains(v6: bool, hi: u64, lo: u64): bool {
    if (v6 != this.ip.v6) return false;
    if (!v6) return maskedEqual(lo, this.ip.lo, this.bits, 32);
    if (this.bits <= 64) return maskedEqual(hi, this.ip.hi, this.bits, 64);
    return hi == this.ip.hi && maskedEqual(lo, this.ip.lo, this.bits - 64, 64);
  }
}

/** Do the top `bits` of two `width`-bit values agree? */
function maskedEqual(a: u64, b: u64, bits: i32, width: i32): bool {
  if (bits <= 0) return true;
  const shift = <u64>(width - bits);
  return (a >> shift) == (b >> shift);
}

function decimal(s: string, max: i32): i32 {
  const n = s.length;
  if (n == 0 || n > 3 || (n > 1 && s.charCodeAt(0) == 0x30)) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v <= max ? v : -1;
}

/** Dotted-quad IPv4 as a u32, or -1. Parsed in place: this runs on every request. */
export function parseIpv4(s: string): i64 {
  const n = s.length;
  let v: i64 = 0;
  let part = 0;
  let digits = 0;
  let octet = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 0x2E;
    if (c == 0x2E) {
      if (digits == 0 || part == 4) return -1;
      v = (v << 8) | octet;
      part++;
      digits = 0;
      octet = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      // No leading zeros (inet_pton): "010" could be read as octal elsewhere.
      if (digits == 1 && octet == 0) return -1;
      octet = octet * 10 + (c - 0x30);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  return part == 4 ? v : -1;
}

/** Appends the 16-bit groups of one side of "::" to `out`; false when malformed. */
function groups(s: string, out: u32[], allowIpv4Tail: bool): bool {
  if (s.length == 0) return true;
  const parts = s.split(":");
  for (let i = 0; i < parts.length; i++) {
    const p = unchecked(parts[i]);
    if (allowIpv4Tail && i == parts.length - 1 && p.includes(".")) {
      const v4 = parseIpv4(p);
      if (v4 < 0) return false;
      out.push(<u32>(v4 >> 16));
      out.push(<u32>(v4 & 0xFFFF));
      return true;
    }
    if (p.length == 0 || p.length > 4) return false;
    let g: u32 = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j);
      let d: i32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else return false;
      g = (g << 4) | <u32>d;
    }
    out.push(g);
  }
  return true;
}

export function parseIpv6(s: string): Ip | null {
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return null;
  const head = new Array<u32>();
  const tail = new Array<u32>();
  if (gap < 0) {
    if (!groups(s, head, true) || head.length != 8) return null;
  } else {
    if (!groups(s.substring(0, gap), head, false) || !groups(s.substring(gap + 2), tail, true)) return null;
    if (head.length + tail.length > 7) return null;
  }
  const all = new Array<u32>(8);
  for (let i = 0; i < head.length; i++) all[i] = head[i];
  for (let i = 0; i < tail.length; i++) all[8 - tail.length + i] = tail[i];
  let hi: u64 = 0;
  let lo: u64 = 0;
  for (let i = 0; i < 4; i++) hi = (hi << 16) | <u64>all[i];
  for (let i = 4; i < 8; i++) lo = (lo << 16) | <u64>all[i];
  return new Ip(true, hi, lo);
}

/** An IPv4 or IPv6 address (IPv4-mapped IPv6 becomes IPv4), or null for a name. */
export function parseIp(s: string): Ip | null {
  const v4 = parseIpv4(s);
  if (v4 >= 0) return new Ip(false, 0, <u64>v4);
  if (charAt(s, 0x3A, 0) < 0) return null;
  const a = parseIpv6(s);
  if (a === null) return null;
  if (a.hi == 0 && (a.lo >> 32) == 0xFFFF) return new Ip(false, 0, a.lo & 0xFFFFFFFF);
  return a;
}

/** Index of the first `c` in `s` at or after `from`, or -1 (one code unit: no String#indexOf). */
function charAt(s: string, c: i32, from: i32): i32 {
  for (let i = from; i < s.length; i++) if (s.charCodeAt(i) == c) return i;
  return -1;
}

/** The host of an authority or `ip:port` address: lower case, no port, no brackets, no trailing dot. */
export function hostOf(authority: string): string {
  const n = authority.length;
  let from = 0;
  let to = n;
  if (n > 0 && authority.charCodeAt(0) == 0x5B) { // [v6]:port
    from = 1;
    const end = charAt(authority, 0x5D, 1);
    if (end >= 0) to = end;
  } else {
    const colon = charAt(authority, 0x3A, 0);
    // One colon separates a port; several mean a bare IPv6 address.
    if (colon >= 0 && charAt(authority, 0x3A, colon + 1) < 0) to = colon;
  }
  if (to > from && authority.charCodeAt(to - 1) == 0x2E) to--; // trailing dot
  return asciiLowerCase(from == 0 && to == n ? authority : authority.substring(from, to));
}

function isHostName(s: string): bool {
  if (s.length == 0 || s.length > 253) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x2E || c == 0x5F;
    if (!ok) return false;
  }
  return true;
}

export class Passthrough {
  private names: string[] = [];
  private nets: Net[] = [];

  /** Adds a host name, IP address or CIDR; false when `entry` is none of them. */
  add(entry: string): bool {
    const slash = entry.indexOf("/");
    if (slash >= 0) {
      const address = entry.substring(0, slash);
      const ip = parseIp(address);
      if (ip === null) return false;
      // An IPv4-mapped IPv6 CIDR (::ffff:a.b.c.d/n) is an IPv4 CIDR of n - 96 bits.
      const mapped = !ip.v6 && address.includes(":");
      const bits = decimal(entry.substring(slash + 1), ip.v6 || mapped ? 128 : 32);
      if (bits < 0 || (mapped && bits < 96)) return false;
      this.nets.push(new Net(ip, mapped ? bits - 96 : bits));
      return true;
    }
    const host = hostOf(entry);
    const ip = parseIp(host);
    if (ip !== null) {
      this.nets.push(new Net(ip, ip.v6 ? 128 : 32));
      return true;
    }
    if (!isHostName(host)) return false;
    if (!this.names.includes(host)) this.names.push(host);
    return true;
  }

  /** Does an authority (`host[:port]`) or address (`ip:port`, `[ip]:port`) pass? */
  matches(authority: string): bool {
    const host = hostOf(authority);
    if (host.length == 0) return false;
    const v4 = parseIpv4(host);
    if (v4 >= 0) return this.inNets(false, 0, <u64>v4);
    const ip = parseIp(host);
    if (ip === null) return this.names.includes(host);
    return this.inNets(ip.v6, ip.hi, ip.lo);
  }

  private inNets(v6: bool, hi: u64, lo: u64): bool {
    for (let i = 0; i < this.nets.length; i++) {
      if (unchecked(this.nets[i]).contains(v6, hi, lo)) return true;
    }
    return false;
  }
}

/** The host of an Istio cluster name `outbound|PORT|SUBSET|HOST` and, for a Kubernetes
 * service, its short forms `name.namespace` and `name.namespace.svc`; none for other names. */
export function cacheHosts(cluster: string): string[] {
  const parts = cluster.split("|");
  const out = new Array<string>();
  if (parts.length != 4 || unchecked(parts[3]).length == 0) return out;
  const host = hostOf(unchecked(parts[3]));
  out.push(host);
  const svc = host.indexOf(".svc.");
  if (svc > 0) {
    out.push(host.substring(0, svc));
    out.push(host.substring(0, svc + 4));
  }
  return out;
}
