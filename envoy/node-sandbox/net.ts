// Small helpers shared by the sandbox's servers: listen on a free loopback port, close with
// keep-alive sockets, read a request body, strip hop-by-hop headers.
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";

export const LOOPBACK = "127.0.0.1";

/** Listen on 127.0.0.1 (port 0 = a free one the kernel picks, no race); resolves the port. */
export function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, LOOPBACK, () => {
      server.off("error", reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

/** Close a server and every socket it holds (keep-alive connections would keep it open). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A free port for a child process that must be told its port up front (tiny race, loopback only). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once("error", reject);
    srv.listen(0, LOOPBACK, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The body of a request as the chunks that arrived (kept apart so a sidecar can feed them one by
 * one, as Envoy delivers body data). */
export function readChunks(req: IncomingMessage): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.once("end", () => resolve(chunks));
    req.once("error", reject);
  });
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  return Buffer.concat(await readChunks(req));
}

/** Connection-specific headers (RFC 9110 §7.6.1 and the ones Envoy's codecs drop). */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Header pairs of a Node request/response, names lower-case, repeated headers kept apart. */
export function headerPairs(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i].toLowerCase(), raw[i + 1]]);
  return out;
}

/** Header value (first one) from pairs. */
export function header(pairs: Array<[string, string]>, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of pairs) if (k === n) return v;
  return undefined;
}

/** Convert pairs to a flat array for undici / node's writeHead (keeps duplicates). */
export function flat(pairs: Array<[string, string]>): string[] {
  const out: string[] = [];
  for (const [k, v] of pairs) out.push(k, v);
  return out;
}

export { createServer };
