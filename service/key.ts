// The call key: `(request-id, method, authority, path+query, n)`. Test and mirror calls of the
// same exchange build the same key; `n` (from `store.sequence`, counted per stack) pairs the n-th
// call of a tuple on the test stack with the n-th call of that tuple on the mirror stack.
// Fields are joined with "\n", which cannot occur in an HTTP/1.1 header value or request target.

/** Drop the query parameters named in `ignore` (names compared after percent-decoding), keeping
 * the others in order and byte for byte. */
export function stripQuery(pathAndQuery: string, ignore: ReadonlySet<string>): string {
  const q = pathAndQuery.indexOf("?");
  if (q < 0 || ignore.size === 0) return pathAndQuery;
  const kept: string[] = [];
  for (const part of pathAndQuery.slice(q + 1).split("&")) {
    const eq = part.indexOf("=");
    const rawName = eq >= 0 ? part.slice(0, eq) : part;
    let name = rawName.replace(/\+/g, " ");
    try {
      name = decodeURIComponent(name);
    } catch {
      // keep the raw name
    }
    if (!ignore.has(name)) kept.push(part);
  }
  const path = pathAndQuery.slice(0, q);
  return kept.length > 0 ? `${path}?${kept.join("&")}` : path;
}

/** The tuple counted by `store.sequence`: everything in the key but `n`. */
export function callTuple(requestId: string, method: string, authority: string, pathAndQuery: string): string {
  return requestId + "\n" + method + "\n" + authority + "\n" + pathAndQuery;
}

export function callKey(tuple: string, n: number): string {
  return tuple + "\n" + n;
}
