import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rid, send, startService, type Service } from "./support/harness.ts";
import { mapResolver, spyConnector } from "./support/spies.ts";

function makeCerts(dir: string): { ca: string; key: string; cert: string } {
  const o = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  o(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=mesh-mirror test CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  o(["req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=secure.test"]);
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=DNS:secure.test\nextendedKeyUsage=serverAuth\n");
  o(["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf"]);
  return { ca: join(dir, "ca.pem"), key: join(dir, "srv.key"), cert: join(dir, "srv.pem") };
}

describe("tls-origination-for-https-hosts", () => {
  let server: Server;
  let port: number;
  let svc: Service;
  let untrusting: Service;
  const seen: Array<{ url: string; servername: string | false | null; host: string | undefined }> = [];
  let connector: ReturnType<typeof spyConnector>;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-mirror-tls-"));
    const certs = makeCerts(dir);
    server = createServer({ key: readFileSync(certs.key), cert: readFileSync(certs.cert) }, (req, res) => {
      seen.push({ url: req.url!, servername: (req.socket as TLSSocket).servername, host: req.headers.host });
      res.setHeader("content-type", "text/plain");
      res.end(`secure ${req.url}`);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
    const resolver = mapResolver({ "secure.test": "127.0.0.1" });
    // a spy around undici's connector, trusting the test CA
    connector = spyConnector({ ca: [readFileSync(certs.ca, "utf8")] });
    svc = await startService({ MIRROR_CACHE_HTTPS_HOSTS: "secure.test", MIRROR_CACHE_TLS_CA_FILE: certs.ca }, { resolver, connector });
    // without the CA (default connector built from config: system CAs only) the handshake fails
    untrusting = await startService({ MIRROR_CACHE_HTTPS_HOSTS: "secure.test" }, { resolver });
  });
  afterAll(async () => {
    await svc.close();
    await untrusting.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("a plain-HTTP call to an https host is forwarded over TLS with SNI and verified against MIRROR_CACHE_TLS_CA_FILE", async () => {
    const id = rid();
    const a = await send(svc.port, { host: `secure.test:${port}`, stack: "test", rid: id, path: "/pay" });
    expect(a.status).toBe(200);
    expect(a.headers["x-mirror-cache"]).toBe("pass");
    expect(a.text).toBe("secure /pay");
    expect(seen.at(-1)).toEqual({ url: "/pay", servername: "secure.test", host: `secure.test:${port}` });
    // connected to the checked IP, TLS with the name as SNI
    expect(connector.attempts.at(-1)).toEqual({ hostname: "127.0.0.1", port: String(port), protocol: "https:", servername: "secure.test" });
    const m = await send(svc.port, { host: `secure.test:${port}`, stack: "mirror", rid: id, path: "/pay" });
    expect(m.headers["x-mirror-cache"]).toBe("hit");
    expect(m.text).toBe("secure /pay");
  });

  it("the service's own config builds the trusting connector from MIRROR_CACHE_TLS_CA_FILE", async () => {
    const own = await startService(
      { MIRROR_CACHE_HTTPS_HOSTS: "*.test", MIRROR_CACHE_TLS_CA_FILE: svc.config.tlsCaFile! },
      { resolver: mapResolver({ "secure.test": "127.0.0.1" }) },
    );
    try {
      const a = await send(own.port, { host: `secure.test:${port}`, stack: "test", rid: rid(), path: "/own" });
      expect(a.status).toBe(200);
      expect(a.text).toBe("secure /own");
    } finally {
      await own.close();
    }
  });

  it("an untrusted certificate is a recorded 502 UPSTREAM_UNAVAILABLE", async () => {
    const id = rid();
    const a = await send(untrusting.port, { host: `secure.test:${port}`, stack: "test", rid: id, path: "/x" });
    expect(a.status).toBe(502);
    expect(a.json().code).toBe("UPSTREAM_UNAVAILABLE");
    expect(a.json().message).toMatch(/certificate|self.signed|issuer/i);
    const m = await send(untrusting.port, { host: `secure.test:${port}`, stack: "mirror", rid: id, path: "/x" });
    expect(m.status).toBe(502);
    expect(m.headers["x-mirror-cache"]).toBe("hit");
  });
});
