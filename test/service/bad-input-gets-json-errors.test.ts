import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "node:net";
import { send, startService, startUpstream, type SendOptions, type Service, type Upstream } from "./support/harness.ts";

describe("bad-input-gets-json-errors", () => {
  let up: Upstream;
  let svc: Service;
  beforeAll(async () => {
    up = await startUpstream();
    svc = await startService();
  });
  afterAll(async () => {
    await svc.close();
    await up.close();
  });

  const cases: Array<[string, () => SendOptions, number, string, string | undefined]> = [
    ["no stack header", () => ({ host: up.authority, rid: "r1" }), 400, "INVALID_STACK", "invalid"],
    ["an unknown stack value", () => ({ host: up.authority, rid: "r1", stack: "staging" }), 400, "INVALID_STACK", "invalid"],
    ["a stack value in the wrong case", () => ({ host: up.authority, rid: "r1", stack: "TEST" }), 400, "INVALID_STACK", "invalid"],
    ["an empty stack value", () => ({ host: up.authority, rid: "r1", stack: "" }), 400, "INVALID_STACK", "invalid"],
    ["two stack headers", () => ({ host: up.authority, rid: "r1", headers: { "x-mirror-stack": ["test", "mirror"] } }), 400, "INVALID_STACK", "invalid"],
    ["no request id (test)", () => ({ host: up.authority, stack: "test" }), 400, "INVALID_REQUEST_ID", "invalid"],
    ["no request id (mirror)", () => ({ host: up.authority, stack: "mirror" }), 400, "INVALID_REQUEST_ID", "invalid"],
    ["an empty request id", () => ({ host: up.authority, stack: "mirror", rid: "" }), 400, "INVALID_REQUEST_ID", "invalid"],
    ["an over-long request id", () => ({ host: up.authority, stack: "test", rid: "x".repeat(2000) }), 400, "INVALID_REQUEST_ID", "invalid"],
    ["a Host with a space", () => ({ host: "bad host", stack: "test", rid: "r1" }), 400, "INVALID_AUTHORITY", "invalid"],
    ["a Host with userinfo", () => ({ host: "user@example.com", stack: "test", rid: "r1" }), 400, "INVALID_AUTHORITY", "invalid"],
    ["a Host with a bad port", () => ({ host: "example.com:99999", stack: "test", rid: "r1" }), 400, "INVALID_AUTHORITY", "invalid"],
    ["a Host with a non-numeric port", () => ({ host: "example.com:http", stack: "test", rid: "r1" }), 400, "INVALID_AUTHORITY", "invalid"],
    ["a malformed IPv6 Host", () => ({ host: "[zz::1]:80", stack: "test", rid: "r1" }), 400, "INVALID_AUTHORITY", "invalid"],
    ["a request to a probe path with a bad stack", () => ({ path: "/healthz", stack: "nope", rid: "r1" }), 400, "INVALID_STACK", "invalid"],
    ["an unknown path without a stack", () => ({ path: "/anything" }), 400, "INVALID_STACK", "invalid"],
  ];

  it.each(cases)("%s → %i %s", async (_what, opts, status, code, cache) => {
    const a = await send(svc.port, opts());
    expect(a.status).toBe(status);
    expect(a.headers["content-type"]).toBe("application/json");
    expect(a.headers["x-mirror-cache"]).toBe(cache);
    const j = a.json();
    expect(j.code).toBe(code);
    expect(typeof j.message).toBe("string");
    expect(j.message.length).toBeGreaterThan(10);
    expect(Object.keys(j).sort()).toEqual(["code", "message"]);
    expect(up.seen).toHaveLength(0);
  });

  it("an absolute-form request target is refused with a JSON error", async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(svc.port, "127.0.0.1", () => {
        s.write(`GET http://${up.authority}/x HTTP/1.1\r\nHost: ${up.authority}\r\nx-mirror-stack: test\r\nx-request-id: r1\r\nConnection: close\r\n\r\n`);
      });
      let buf = "";
      s.on("data", (d) => (buf += d));
      s.on("end", () => resolve(buf));
      s.on("error", reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    expect(raw).toContain('"code":"INVALID_AUTHORITY"');
    expect(up.seen).toHaveLength(0);
  });

  /** Raw bytes on a socket; resolves with everything the service sent before it closed. */
  const raw = (payload: string) =>
    new Promise<string>((resolve) => {
      const s = connect(svc.port, "127.0.0.1", () => s.write(payload));
      let buf = "";
      s.setEncoding("latin1");
      s.on("data", (d: string) => (buf += d));
      s.on("close", () => resolve(buf));
      s.on("error", () => undefined);
    });
  const rawJson = (out: string) => JSON.parse(out.slice(out.indexOf("\r\n\r\n") + 4));

  it.each([
    ["a header over Node's limit", (): string => `GET /x HTTP/1.1\r\nHost: ${up.authority}\r\nx-mirror-stack: test\r\nx-request-id: r1\r\nx-big: ${"a".repeat(64 * 1024)}\r\n\r\n`, 431, "HEADERS_TOO_LARGE"],
    ["Content-Length with Transfer-Encoding", (): string => `POST /x HTTP/1.1\r\nHost: ${up.authority}\r\nx-mirror-stack: test\r\nx-request-id: r1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, "BAD_REQUEST"],
    ["a malformed request line", (): string => "GET /x HTTP/9\r\n\r\n", 400, "BAD_REQUEST"],
  ] as const)("Node's HTTP parser refuses %s → %i %s, catalogued JSON, no x-mirror-cache, connection closed", async (_what, payload, status, code) => {
    const out = await raw(payload());
    expect(out).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    const head = out.slice(0, out.indexOf("\r\n\r\n")).toLowerCase();
    expect(head).toContain("content-type: application/json");
    expect(head).toContain("connection: close");
    expect(head).not.toContain("x-mirror-cache");
    const j = rawJson(out);
    expect(Object.keys(j).sort()).toEqual(["code", "message"]);
    expect(j.code).toBe(code);
    expect(up.seen).toHaveLength(0);
  });

  it("a path the router cannot decode is not refused: the test call is forwarded with its exact bytes", async () => {
    for (const path of ["/%", "/a%zz?q=%"]) {
      const refused = await send(svc.port, { path, host: up.authority, rid: "bad-url" });
      expect([refused.status, refused.json().code]).toEqual([400, "INVALID_STACK"]);
      const a = await send(svc.port, { path, host: up.authority, stack: "test", rid: `bad-url-${path}` });
      expect(a.headers["x-mirror-cache"]).toBe("pass");
      expect(up.seen.at(-1)!.url).toBe(path);
    }
    up.seen.length = 0;
  });

  it("unusual methods reach the catch-all route", async () => {
    for (const method of ["PROPFIND", "MKCOL", "PURGE"]) {
      const a = await send(svc.port, { method, host: up.authority, stack: "test", rid: `m-${method}` });
      expect(a.headers["x-mirror-cache"], method).toBe("pass");
    }
  });

  it("the service keeps serving after all of the above", async () => {
    const a = await send(svc.port, { host: up.authority, stack: "test", rid: "after" });
    expect(a.status).toBe(200);
    expect(a.headers["x-mirror-cache"]).toBe("pass");
  });
});
