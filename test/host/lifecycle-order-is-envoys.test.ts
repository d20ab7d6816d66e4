// contract.md §2/§3: root contexts per VM and per plugin, lazy stream contexts, Envoy's
// log → done → delete at stream end, context ids per VM and never reused.
import { beforeAll, describe, expect, it } from "vitest";
import { fixture } from "./support/fixtures.ts";
import { get, lines, probeHost } from "./support/probe.ts";

const calls = (host: Awaited<ReturnType<typeof probeHost>>, worker = 0) =>
  host.getTrace().filter((t) => t.worker === worker).map((t) => `${t.fn}(${t.args.join(",")})`);

describe("lifecycle follows Envoy", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("each VM runs on_context_create(R,0), on_vm_start, on_configure for the root context", async () => {
    const host = await probeHost((o) => o.withPluginConfiguration("hello").withVmConfiguration("vmconf").withWorkers(2));
    for (const w of [0, 1]) {
      expect(calls(host, w)).toEqual(["proxy_on_context_create(1,0)", "proxy_on_vm_start(1,6)", "proxy_on_configure(1,5)"]);
    }
    // The plugin configuration buffer is readable in on_configure; the VM configuration always.
    expect(lines(host, "configure ")).toEqual(["configure 1 5 0:hello", "configure 1 5 0:hello"]);
    expect(lines(host, "vm_config ")).toEqual(["vm_config 0:vmconf", "vm_config 0:vmconf"]);
  });

  it("creates the stream context lazily at request headers, and ends with log → done → delete", async () => {
    const host = await probeHost();
    host.clearTrace();
    const s = host.initializeHttpContext();
    expect(host.getTrace()).toEqual([]);
    host.callOnRequestHeaders(s, get(), true);
    host.callOnResponseHeaders(s, [[":status", "200"]], true);
    expect(calls(host)).toEqual([
      "proxy_on_context_create(2,1)",
      "proxy_on_request_headers(2,4,1)",
      "proxy_on_response_headers(2,1,1)",
      "proxy_on_log(2)",
      "proxy_on_done(2)",
      "proxy_on_delete(2)",
    ]);
    // Envoy ended the stream when the response was complete: completing again does nothing.
    host.completeHttpContext(s);
    expect(calls(host)).toHaveLength(6);
  });

  it("creates the context right before on_log for a stream the filter never saw", async () => {
    const host = await probeHost();
    host.clearTrace();
    const s = host.initializeHttpContext();
    host.completeHttpContext(s);
    expect(calls(host)).toEqual(["proxy_on_context_create(2,1)", "proxy_on_log(2)", "proxy_on_done(2)", "proxy_on_delete(2)"]);
    expect(host.getStreamState(s)).toBe("closed");
  });

  it("never reuses a context id within a VM; ids are per VM", async () => {
    const host = await probeHost((o) => o.withWorkers(2));
    const ids: Array<[number, number]> = [];
    for (let i = 0; i < 6; i++) {
      const s = host.initializeHttpContext();
      host.callOnRequestHeaders(s, get(), true);
      host.completeHttpContext(s);
      ids.push([host.getStreamInfo(s).worker, host.getContextId(s)]);
    }
    expect(ids).toEqual([[0, 2], [1, 2], [0, 3], [1, 3], [0, 4], [1, 4]]);
  });

  it("several root contexts per VM: each gets on_vm_start and on_configure, streams name their root", async () => {
    const host = await probeHost((o) => o.withPluginConfiguration("outbound"));
    const inbound = host.addRootContext({ configuration: "inbound", rootId: "in" });
    expect(inbound).toEqual({ id: 2, configured: true });
    expect(lines(host, "configure ")).toEqual(["configure 1 8 0:outbound", "configure 2 7 0:inbound"]);
    expect(lines(host, "vm_start ")).toEqual(["vm_start 1 0", "vm_start 2 0"]);
    const s = host.initializeHttpContext({ rootContextId: inbound.id });
    host.callOnRequestHeaders(s, get(), true);
    expect(lines(host, "context_create 3 ")).toEqual(["context_create 3 2"]);
  });

  it("a configuration refused by on_configure leaves the plugin unconfigured: no streams", async () => {
    const host = await probeHost((o) => o.withPluginConfiguration("reject"));
    expect(host.configured).toBe(false);
    expect(() => host.initializeHttpContext()).toThrow(/not configured/);
  });

  it("plugin removal: root on_done then on_delete; its pending http calls are cancelled", async () => {
    const { CACHE } = await import("./support/probe.ts");
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-dispatch": CACHE }), true);
    expect(host.getPendingHttpCalls()).toHaveLength(1);
    host.clearTrace();
    host.removeRootContext();
    expect(calls(host)).toEqual(["proxy_on_done(1)", "proxy_on_delete(1)"]);
    expect(host.getPendingHttpCalls()).toHaveLength(0);
  });

  it("ticks fire per VM for roots that set a period", async () => {
    const host = await probeHost((o) => o.withPluginConfiguration("tick").withWorkers(2));
    expect(host.getTickPeriod()).toBe(1000);
    host.tick();
    expect(lines(host, "tick ")).toEqual(["tick 1", "tick 1"]);
  });

  it("metrics are one stat per name across VMs", async () => {
    const host = await probeHost((o) => o.withWorkers(2));
    for (let i = 0; i < 3; i++) host.callOnRequestHeaders(host.initializeHttpContext(), get(), true);
    expect(host.getCounterValue("probe_requests")).toBe(3);
    expect(lines(host, "metric_id ")).toEqual(["metric_id 4", "metric_id 4"]); // first counter id is 4 in each VM
  });
});
