// contract.md §8: send_local_response is queued until the VM call returns, details get '_' for
// whitespace, the reply runs through the same filter's response callbacks, and a second local
// reply from there leaves the request hanging (envoyproxy/envoy#28826).
import { beforeAll, describe, expect, it } from "vitest";
import { fixture } from "./support/fixtures.ts";
import { get, lines, probeHost, text } from "./support/probe.ts";

describe("local replies", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("run through on_response_headers/on_response_body of the same filter", async () => {
    const host = await probeHost();
    const events: string[] = [];
    host.on("localResponse", (st, r) => events.push(`${st}:${r.statusCode}`));
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-local-reply": "403" }), true);
    expect(lines(host, "response_headers ")).toEqual(["response_headers 2 4 0 status=403 reqhdr=0:/a prop_path=0:2f61 callhdr=2:"]);
    expect(lines(host, "response_body ")).toEqual(["response_body 2 13 1 0:probe says no"]);
    const r = host.getLocalResponse(s)!;
    expect(r.statusCode).toBe(403);
    expect(r.details).toBe("denied_by__probe_now");
    expect(r.grpcStatus).toBeUndefined();
    expect(text(r.body)).toBe("probe says no");
    // Module headers lower-cased; its content-type kept; Envoy's content-length; the filter's own addition.
    expect(r.headers).toEqual([[":status", "403"], ["x-reason", "probe"], ["content-type", "text/x-probe"], ["content-length", "13"], ["x-probe", "seen"]]);
    expect(events).toEqual([`${s}:403`]);
    expect(host.getStreamState(s)).toBe("local-reply");
    // Envoy ended the stream once the reply was sent.
    expect(lines(host, "delete ")).toEqual(["delete 2"]);
  });

  it("a second send_local_response from the reply's response callback leaves the request hanging", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-local-reply": "403", "x-test-reply-in-response": "1" }), true);
    expect(host.getLocalResponse(s)).toBeUndefined();
    const info = host.getStreamInfo(s);
    expect(info.hung).toMatch(/envoyproxy\/envoy#28826/);
    expect(info.completed).toBe(false);
  });

  it("from a response callback of an upstream response: a direct reply that replaces the response", async () => {
    const host = await probeHost();
    const s = host.initializeHttpContext();
    host.callOnRequestHeaders(s, get({ "x-test-reply-in-response": "1" }), true);
    host.callOnResponseHeaders(s, [[":status", "200"]], false);
    const r = host.getLocalResponse(s)!;
    expect(r.statusCode).toBe(500);
    expect(text(r.body)).toBe("again");
    expect(r.headers).not.toContainEqual(["x-probe", "seen"]); // not run through the filter again
  });
});
