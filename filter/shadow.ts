// Istio marks a mirrored request by inserting "-shadow" after the host part of :authority,
// before any port: `reviews:9080` → `reviews-shadow:9080`,
// `reviews.default.svc.cluster.local` → `reviews.default.svc.cluster.local-shadow`.

const SUFFIX = "-shadow";

function isDigits(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** The original authority, or null when `authority` carries no shadow suffix. */
export function restoreShadowHost(authority: string): string | null {
  let host = authority;
  let port = "";
  const colon = authority.lastIndexOf(":");
  if (colon > 0 && isDigits(authority.substring(colon + 1))) {
    host = authority.substring(0, colon);
    port = authority.substring(colon);
  }
  const cut = host.length - SUFFIX.length;
  if (cut <= 0) return null;
  // Envoy writes the suffix in lower case; compare without regard to case all the same.
  for (let i = 0; i < SUFFIX.length; i++) {
    if ((host.charCodeAt(cut + i) | 0x20) != SUFFIX.charCodeAt(i)) return null;
  }
  return host.substring(0, cut) + port;
}
