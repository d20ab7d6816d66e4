// CONTRACTS.md "Passthrough": metadata endpoints, configured hosts/IPs/CIDRs and the cache
// itself: Continue, no header added, changed or removed, no dispatch. Matching ignores a port,
// IPv6 brackets, case and a trailing dot, and maps ::ffff:a.b.c.d to IPv4; it looks at
// :authority and at the destination.address property.
import { describe, expect, it } from "vitest";
import { Action, ProxyWasmHost } from "../proxy-wasm-host/index.ts";
import { config, counters, host, options, request } from "./helpers.ts";

async function expectPassthrough(h: ProxyWasmHost, authority: string): Promise<void> {
  const s = h.initializeHttpContext();
  const sent = request([["x-mirror-stack", "spoofed"], ["x-mirror-stack", "twice"]], authority);
  const before = counters(h).passthrough;
  expect(h.callOnRequestHeaders(s, sent, true), authority).toBe(Action.Continue);
  expect(h.getUpstreamRequest(s)?.headers, authority).toEqual(sent);
  expect(h.getPendingHttpCalls(), authority).toHaveLength(0);
  expect(counters(h).passthrough, authority).toBe(before + 1);
  h.completeHttpContext(s);
}

async function expectTagged(h: ProxyWasmHost, authority: string): Promise<void> {
  const s = h.initializeHttpContext();
  h.callOnRequestHeaders(s, request([], authority), true);
  expect(h.getPendingHttpCalls().length, authority).toBe(1);
  h.failHttpCall(h.getPendingHttpCalls()[0], "reset");
}

describe("passthrough", () => {
  it("leaves every built-in metadata endpoint untouched, in every spelling", async () => {
    const h = await host("mirror");
    for (const authority of [
      "169.254.169.254", "169.254.169.254:80", "169.254.170.2", "169.254.170.2:8080",
      "fd00:ec2::254", "[fd00:ec2::254]", "[fd00:ec2::254]:80", "[FD00:EC2:0:0:0:0:0:254]:80",
      "metadata.google.internal", "Metadata.Google.Internal.", "metadata.google.internal:80",
      "metadata.goog", "METADATA.GOOG.:443", "100.100.100.200", "100.100.100.200:80",
      "::ffff:169.254.169.254", "[::ffff:169.254.169.254]:80", "[::ffff:a9fe:a9fe]",
    ]) await expectPassthrough(h, authority);
    expect(counters(h)).toMatchObject({ tagged: 0, refused: 0 });
  });

  it("leaves configured hosts, IPs and CIDRs untouched", async () => {
    const h = await host("mirror", { passthrough: ["vault.internal", "10.1.2.3", "192.168.0.0/16", "2001:db8::/32", "fd12::7", "::ffff:172.16.0.0/108"] });
    for (const authority of [
      "vault.internal", "VAULT.internal.:8200", "10.1.2.3:443", "192.168.7.9", "192.168.255.255:1",
      "[2001:db8:ffff::1]:443", "2001:db8::", "[fd12::7]", "172.16.200.1", "[::ffff:172.31.0.1]",
    ]) await expectPassthrough(h, authority);
  });

  it("leaves calls to the cache service itself untouched", async () => {
    const h = await host("mirror");
    for (const authority of [
      "mirror-cache.mesh-mirror.svc.cluster.local", "mirror-cache.mesh-mirror.svc.cluster.local:8080",
      "mirror-cache.mesh-mirror", "mirror-cache.mesh-mirror.svc:8080",
    ]) await expectPassthrough(h, authority);
  });

  it("matches the destination.address property when the authority is an ordinary name", async () => {
    for (const address of ["169.254.169.254:80", "[fd00:ec2::254]:80", "[::ffff:169.254.169.254]:80", "10.9.9.9:443"]) {
      const h = await ProxyWasmHost.create(options(config("mirror", { passthrough: ["10.9.0.0/16"] })).withProperty(["destination", "address"], address));
      await expectPassthrough(h, "innocent-looking.example.com");
    }
  });

  it("tags near misses", async () => {
    const h = await host("test", { passthrough: ["10.0.0.0/8", "vault.internal"] });
    for (const authority of [
      "169.254.169.25", "169.254.169.2540", "169.254.169.254.nip.io", "metadata.google.internal.evil.com",
      "xmetadata.goog", "11.0.0.1", "vault.internal.example", "fd00:ec2::255", "[::ffff:169.254.169.253]", "",
    ]) await expectTagged(h, authority);
    expect(counters(h).passthrough).toBe(0);
  });

  it("does not tag on a destination.address outside every list", async () => {
    const h = await ProxyWasmHost.create(options(config("test")).withProperty(["destination", "address"], "10.0.0.7:443"));
    await expectTagged(h, "api.example.com");
    expect(counters(h)).toMatchObject({ passthrough: 0, tagged: 1 });
  });
});
