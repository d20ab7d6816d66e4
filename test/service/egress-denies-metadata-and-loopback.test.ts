import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EgressPolicy, parseIp, formatIp, selfAddresses } from "../../service/egress.ts";
import { rid, send, startService, startUpstream, type Service, type Upstream } from "./support/harness.ts";
import { mapResolver, spyConnector } from "./support/spies.ts";

describe("egress-denies-metadata-and-loopback", () => {
  describe("policy on addresses", () => {
    const policy = new EgressPolicy({ allow: [], deny: ["10.9.0.0/16", "blocked.example"], allowOnly: false }, () => undefined);
    it.each([
      "169.254.169.254",
      "169.254.170.2",
      "fd00:ec2::254",
      "[fd00:ec2::254]",
      "100.100.100.200",
      "127.0.0.1",
      "127.8.9.10",
      "::1",
      "0.0.0.0",
      "::",
      "fe80::1",
      "::ffff:169.254.169.254",
      "::ffff:a9fe:a9fe",
      "::ffff:127.0.0.1",
      "0:0:0:0:0:ffff:7f00:1",
      "64:ff9b::169.254.169.254",
      "::169.254.169.254",
      "10.9.3.4",
    ])("refuses %s", (ip) => {
      expect(policy.checkIp(ip, 80)).not.toBeNull();
    });
    it.each(["93.184.216.34", "10.0.0.1", "2606:4700::1", "::ffff:8.8.8.8"])("allows %s", (ip) => {
      expect(policy.checkIp(ip, 80)).toBeNull();
    });
    it.each(["metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata.goog", "localhost", "blocked.example"])("refuses the name %s", (n) => {
      expect(policy.checkName(n)).not.toBeNull();
    });
    it("reduces IPv4-mapped IPv6 to IPv4", () => {
      expect(formatIp(parseIp("::ffff:169.254.169.254")!)).toBe("169.254.169.254");
      expect(formatIp(parseIp("[::FFFF:A9FE:A9FE]")!)).toBe("169.254.169.254");
    });
    it("an allow CIDR lifts a default deny; the deny list wins over the allow list; allow-only refuses the rest", () => {
      const p = new EgressPolicy({ allow: ["127.0.0.1/32", "10.9.1.1", "api.example.com"], deny: ["10.9.0.0/16"], allowOnly: true }, () => undefined);
      expect(p.checkIp("127.0.0.1", 80)).toBeNull();
      expect(p.checkIp("127.0.0.2", 80)).not.toBeNull();
      expect(p.checkIp("10.9.1.1", 80)).not.toBeNull();
      expect(p.checkIp("8.8.8.8", 80)).not.toBeNull();
      expect(p.checkIp("8.8.8.8", 80, "api.example.com")).toBeNull();
      // an allowed NAME does not make a metadata address acceptable
      expect(p.checkIp("169.254.169.254", 80, "api.example.com")).not.toBeNull();
    });
    it("counts every interface address as the service's own when it listens on 0.0.0.0", () => {
      const self = selfAddresses("0.0.0.0", 8080);
      const p = new EgressPolicy({ allow: ["0.0.0.0/0", "::/0"], deny: [], allowOnly: false }, () => self);
      expect(p.checkIp("127.0.0.1", 8080)).not.toBeNull();
      expect(p.checkIp("127.0.0.1", 8081)).toBeNull();
      for (const ip of self.ips) expect(p.checkIp(formatIp(ip), 8080)).not.toBeNull();
    });
  });

  describe("through the service, with an injected resolver and connector", () => {
    let up: Upstream;
    let svc: Service;
    const connector = spyConnector();
    let flip = 0;
    beforeAll(async () => {
      up = await startUpstream((_req, res) => {
        res.setHeader("connection", "close"); // every call opens a new connection (re-resolved)
        res.end("upstream");
      });
      const map: Record<string, string | (() => string)> = {
        "evil.test": "169.254.169.254",
        "evil6.test": "fd00:ec2::254",
        "mapped.test": "::ffff:169.254.169.254",
        "loop.test": "127.0.0.2",
        "ok.test": "127.0.0.1",
        "rebind.test": () => (flip++ === 0 ? "127.0.0.1" : "169.254.169.254"),
      };
      const r = mapResolver(map);
      svc = await startService({}, { resolver: r, connector });
    });
    afterAll(async () => {
      await svc.close();
      await up.close();
    });

    it.each([
      ["a name resolving to 169.254.169.254", "evil.test"],
      ["a name resolving to fd00:ec2::254", "evil6.test"],
      ["a name resolving to an IPv4-mapped metadata address", "mapped.test"],
      ["a name resolving to loopback outside the allow list", "loop.test"],
      ["the literal 169.254.169.254", "169.254.169.254"],
      ["the literal 169.254.170.2", "169.254.170.2"],
      ["the literal [fd00:ec2::254]", "[fd00:ec2::254]"],
      ["the literal [::ffff:169.254.169.254]", "[::ffff:169.254.169.254]"],
      ["the literal 100.100.100.200", "100.100.100.200"],
      ["metadata.google.internal", "metadata.google.internal"],
      ["the unspecified address", "0.0.0.0"],
      ["loopback 127.0.0.2", "127.0.0.2"],
    ])("refuses %s with 403 denied, records it, never opens a connection", async (_what, host) => {
      const before = connector.attempts.length;
      const id = rid();
      const a = await send(svc.port, { host: `${host}:${up.port}`, stack: "test", rid: id, path: "/latest/meta-data/" });
      expect(a.status).toBe(403);
      expect(a.headers["x-mirror-cache"]).toBe("denied");
      expect(a.json().code).toBe("EGRESS_DENIED");
      expect(connector.attempts.length).toBe(before);
      // the mirror sees the same refusal
      const m = await send(svc.port, { host: `${host}:${up.port}`, stack: "mirror", rid: id, path: "/latest/meta-data/" });
      expect(m.status).toBe(403);
      expect(m.body.equals(a.body)).toBe(true);
    });

    it("forwards to an allowed address (127.0.0.1/32 in the allow list)", async () => {
      const a = await send(svc.port, { host: `ok.test:${up.port}`, stack: "test", rid: rid() });
      expect(a.status).toBe(200);
      expect(a.text).toBe("upstream");
    });

    it("re-checks on every new connection: DNS rebinding to a metadata address is refused", async () => {
      const first = await send(svc.port, { host: `rebind.test:${up.port}`, stack: "test", rid: rid() });
      expect(first.status).toBe(200);
      const before = connector.attempts.length;
      const second = await send(svc.port, { host: `rebind.test:${up.port}`, stack: "test", rid: rid() });
      expect(second.status).toBe(403);
      expect(second.json().message).toContain("169.254.169.254");
      expect(connector.attempts.length).toBe(before);
    });

    it("only ever hands checked loopback IPs to the connector, and counts denials", async () => {
      expect(connector.attempts.length).toBeGreaterThan(0);
      for (const a of connector.attempts) expect(a.hostname).toBe("127.0.0.1");
      const metrics = await svc.app.metrics.registry.getSingleMetricAsString("mirror_cache_egress_denied_total");
      expect(Number(/ (\d+)$/m.exec(metrics)![1])).toBeGreaterThanOrEqual(13);
    });
  });

  describe("in a network namespace with only loopback", () => {
    const probe = new URL("./support/netns-probe.ts", import.meta.url).pathname;
    const canUnshare = spawnSync("unshare", ["-n", "true"]).status === 0;
    it.skipIf(!canUnshare)("refuses metadata with the policy on, and even with it lifted no packet can leave", () => {
      const r = spawnSync("unshare", ["-n", "sh", "-c", `ip link set lo up && exec "${process.execPath}" --import tsx "${probe}"`], {
        encoding: "utf8",
        timeout: 60_000,
        cwd: new URL("../..", import.meta.url).pathname,
      });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
      expect(out.loopbackUpstream).toBe(200);
      expect(out.policyOn).toEqual({ status: 403, cache: "denied", code: "EGRESS_DENIED" });
      // Policy lifted (allow 0.0.0.0/0): the namespace has no route out, the connect fails.
      expect(out.policyLifted.status).toBe(502);
      expect(out.policyLifted.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(out.policyLifted.message).toMatch(/ENETUNREACH|EHOSTUNREACH|unreachable/i);
    });
  });
});
