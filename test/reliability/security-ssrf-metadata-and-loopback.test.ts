// SSRF: names that RESOLVE to cloud-metadata or loopback addresses, through the real service
// process and the real resolver (glibc, /etc/hosts), in a network namespace with only loopback —
// so no packet can leave even if the code were wrong — with honeypots listening on every metadata
// address inside it. Extends test/service/egress-* (injected resolver; literal addresses in a
// namespace): here the names go through real DNS resolution, a rebinding is done by rewriting
// /etc/hosts, and a control run with the policy lifted proves the honeypots would have seen it.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "./support.ts";

const canUnshare = spawnSync("unshare", ["-n", "-m", "true"]).status === 0;

describe("SSRF to metadata and loopback via names that resolve there (network namespace, real resolver)", () => {
  it.skipIf(!canUnshare)("refuses every such name with 403 denied, replays the refusal to the mirror, no honeypot connection; the lifted control reaches them", () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-mirror-ssrf-"));
    const hosts = join(dir, "hosts");
    writeFileSync(hosts, "127.0.0.1 localhost\n");
    const probe = join(REPO, "test", "reliability", "support", "ssrf-netns-probe.ts");
    const script = [
      "set -e",
      `mount --bind "${hosts}" /etc/hosts`,
      "ip link set lo up",
      "for a in 169.254.169.254 169.254.170.2 100.100.100.200; do ip addr add $a/32 dev lo; done",
      "ip -6 addr add fd00:ec2::254/128 dev lo nodad",
      `exec "${process.execPath}" --import tsx "${probe}"`,
    ].join("\n");
    try {
      const r = spawnSync("unshare", ["-n", "-m", "sh", "-c", script], {
        encoding: "utf8",
        timeout: 120_000,
        cwd: REPO,
        env: { ...process.env, PROBE_HOSTS_FILE: hosts, PROBE_ROOT: REPO },
      });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
      const on = out.policyOn;
      for (const [host, v] of Object.entries(on.denied) as Array<[string, { test: object; mirror: { sameBody: boolean } }]>) {
        expect(v.test, host).toEqual({ status: 403, cache: "denied", code: "EGRESS_DENIED" });
        expect(v.mirror, host).toMatchObject({ status: 403, cache: "hit", sameBody: true });
      }
      expect(on.self).toEqual({ status: 403, code: "EGRESS_DENIED" }); // its own address and port
      expect(on.legit).toEqual({ status: 200, body: "legit upstream" });
      expect(on.rebind.first).toBe(200);
      expect(on.rebind.second).toEqual({ status: 403, code: "EGRESS_DENIED" });
      expect(on.honeypotHits).toEqual({}); // not one connection to a metadata address or 127.0.0.2
      expect(out.hitsBeforeLifted).toEqual({});
      expect(out.lifted.statuses["imds.evil.test:80"]).toBe(200);
      expect(out.lifted.honeypotHits["169.254.169.254"]).toBeGreaterThan(0);
      expect(out.lifted.honeypotHits["127.0.0.2"]).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
