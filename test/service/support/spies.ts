// Injected resolver and connector for egress tests: names map to fixed addresses, and the
// connector records every connection it is asked to open — and refuses (throws) anything but a
// loopback address, so a test can never reach a real metadata endpoint even if the policy broke.
import { buildConnector } from "undici";
import type { Connector, Resolver } from "../../../service/egress.ts";

export function mapResolver(map: Record<string, string | string[] | (() => string)>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const fn = (async (hostname: string) => {
    calls.push(hostname);
    const v = map[hostname];
    if (v === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    const list = typeof v === "function" ? [v()] : Array.isArray(v) ? v : [v];
    return list.map((address) => ({ address, family: (address.includes(":") ? 6 : 4) as 4 | 6 }));
  }) as Resolver & { calls: string[] };
  fn.calls = calls;
  return fn;
}

export function spyConnector(opts: Parameters<typeof buildConnector>[0] = {}): Connector & { attempts: Array<{ hostname: string; port: string; protocol: string; servername?: string }> } {
  const real = buildConnector({ timeout: 2000, ...opts });
  const attempts: Array<{ hostname: string; port: string; protocol: string; servername?: string }> = [];
  const fn = ((o, cb) => {
    attempts.push({ hostname: o.hostname, port: o.port, protocol: o.protocol, servername: o.servername });
    if (o.hostname !== "127.0.0.1" && o.hostname !== "::1") {
      cb(new Error(`TEST SAFETY: connection attempt to non-loopback ${o.hostname}:${o.port}`), null);
      return;
    }
    real(o, cb);
  }) as Connector & { attempts: typeof attempts };
  fn.attempts = attempts;
  return fn;
}
