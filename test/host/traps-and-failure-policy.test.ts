// contract.md §10: a trap fails the VM; FAIL_CLOSED (default) answers 503 wasm_fail_stream,
// FAIL_OPEN skips the filter, FAIL_RELOAD starts a new VM; a failed VM gets no more callbacks.
import { beforeAll, describe, expect, it } from "vitest";
import { fixture } from "./support/fixtures.ts";
import { get, lines, probeHost } from "./support/probe.ts";

describe("traps and failure_policy", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("FAIL_CLOSED: the trapping stream and later ones on that VM get 503 wasm_fail_stream", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-trap": "1" }), true);
    expect(host.failed).toBe(true);
    expect(host.failMessage).toMatch(/unreachable/);
    const r = host.getLocalResponse(s)!;
    expect([r.statusCode, r.details, r.grpcStatus]).toEqual([503, "wasm_fail_stream", 14]);
    expect(host.getUpstreamRequest(s)).toBeUndefined();

    const before = host.getLogs().length;
    const s2 = host.initializeHttpContext();
    host.callOnRequestHeaders(s2, get(), true);
    expect(host.getLocalResponse(s2)!.statusCode).toBe(503);
    expect(host.getLogs().length).toBe(before); // the VM was not called at all
    expect(lines(host, "delete ")).toEqual([]); // no on_done/on_delete from a failed VM
  });

  it("FAIL_OPEN: requests go on untouched", async () => {
    const host = await probeHost((o) => o.withFailurePolicy("FAIL_OPEN"));
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-trap": "1" }), true);
    expect(host.failed).toBe(true);
    expect(host.getUpstreamRequest(s)!.complete).toBe(true);
    const s2 = host.initializeHttpContext();
    host.callOnRequestHeaders(s2, get({ "x-test-add": "x-added=1" }), true);
    expect(host.getUpstreamRequest(s2)!.headers).not.toContainEqual(["x-added", "1"]);
  });

  it("FAIL_RELOAD: the next stream gets a fresh VM with the root context configured again", async () => {
    const host = await probeHost((o) => o.withFailurePolicy("FAIL_RELOAD"));
    host.callOnRequestHeaders(host.initializeHttpContext(), get({ "x-test-trap": "1" }), true);
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get(), true);
    expect(lines(host, "vm_start ")).toHaveLength(2);
    expect(host.getUpstreamRequest(s)!.complete).toBe(true);
    expect(host.getFailures()).toHaveLength(1);
  });

  it("a trap in one worker's VM does not fail the other worker", async () => {
    const host = await probeHost((o) => o.withWorkers(2));
    host.callOnRequestHeaders(host.initializeHttpContext({ worker: 0 }), get({ "x-test-trap": "1" }), true);
    const s = host.initializeHttpContext({ worker: 1 });
    host.callOnRequestHeaders(s, get(), true);
    expect(host.getUpstreamRequest(s)!.complete).toBe(true);
    expect(host.getFailures().map((f) => f.worker)).toEqual([0]);
  });
});
