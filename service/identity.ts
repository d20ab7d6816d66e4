// Caller identity from Istio's `x-forwarded-client-cert` (XFCC). Envoy writes one element per
// proxy that handled the request, comma-separated, oldest first; with APPEND_FORWARD the LAST
// element is the one the mesh-cache's own sidecar added: `By=<our SPIFFE id>;Hash=…;URI=<the
// immediate client's SPIFFE id>`. Values may be double-quoted (then `,` `;` `=` are literal and
// `\"` is a quote).
import type { IdentityRule } from "./config.ts";
import type { Stack } from "./store/types.ts";

export type XfccElement = Record<string, string[]>;

/** Parse an XFCC header into its elements (keys lower-cased; a key may repeat, e.g. URI/DNS).
 * Returns null when the header is malformed (unterminated quote, a pair without `=`). */
export function parseXfcc(header: string): XfccElement[] | null {
  const elements: XfccElement[] = [];
  let el: XfccElement = {};
  let i = 0;
  const n = header.length;
  let sawPair = false;
  while (i < n) {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
    // key
    const ks = i;
    while (i < n && header[i] !== "=" && header[i] !== ";" && header[i] !== ",") i++;
    const key = header.slice(ks, i).trim().toLowerCase();
    if (i >= n || header[i] !== "=") {
      if (key === "" && (i >= n || header[i] === "," || header[i] === ";")) {
        // empty segment: tolerate `a=b;;c=d` and trailing separators
        if (i < n && header[i] === ",") {
          if (sawPair) elements.push(el);
          el = {};
          sawPair = false;
        }
        i++;
        continue;
      }
      return null;
    }
    i++; // '='
    let value = "";
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = header[i];
        if (c === "\\" && i + 1 < n) {
          value += header[i + 1];
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        value += c;
        i++;
      }
      if (!closed) return null;
      while (i < n && (header[i] === " " || header[i] === "\t")) i++;
      if (i < n && header[i] !== ";" && header[i] !== ",") return null;
    } else {
      const vs = i;
      while (i < n && header[i] !== ";" && header[i] !== ",") i++;
      value = header.slice(vs, i).trim();
    }
    if (!key) return null;
    (el[key] ??= []).push(value);
    sawPair = true;
    if (i < n && header[i] === ",") {
      elements.push(el);
      el = {};
      sawPair = false;
    }
    i++;
  }
  if (sawPair) elements.push(el);
  return elements;
}

export interface SpiffeId {
  uri: string;
  trustDomain: string;
  ns: string;
  sa: string;
}

/** `spiffe://TD/ns/NS/sa/SA` (Istio's form), else null. */
export function parseSpiffe(uri: string): SpiffeId | null {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri.trim());
  if (!m) return null;
  return { uri: uri.trim(), trustDomain: m[1], ns: m[2], sa: m[3] };
}

/** The immediate client's SPIFFE id: the `URI` of the last XFCC element that has a SPIFFE URI. */
export function clientSpiffe(header: string): SpiffeId | null {
  const els = parseXfcc(header);
  if (!els || els.length === 0) return null;
  const last = els[els.length - 1];
  for (const u of last.uri ?? []) {
    const id = parseSpiffe(u);
    if (id) return id;
  }
  return null;
}

/** The stack an identity maps to: the most specific matching rule (ns+sa, then sa, then ns). */
export function stackForIdentity(rules: readonly IdentityRule[], id: SpiffeId): Stack | undefined {
  let best: IdentityRule | undefined;
  let bestScore = 0;
  for (const r of rules) {
    if (r.ns !== undefined && r.ns !== id.ns) continue;
    if (r.sa !== undefined && r.sa !== id.sa) continue;
    const score = (r.ns !== undefined ? 1 : 0) + (r.sa !== undefined ? 2 : 0);
    if (score > bestScore) {
      best = r;
      bestScore = score;
    }
  }
  return best?.stack;
}
