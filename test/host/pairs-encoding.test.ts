// contract.md §5: the pairs wire format, byte for byte, both ways.
import { beforeAll, describe, expect, it } from "vitest";
import { decodePairs, encodePairs } from "../proxy-wasm-host/index.ts";
import { fixture } from "./support/fixtures.ts";
import { last, probeHost } from "./support/probe.ts";

const EXAMPLE = "02000000" + "01000000" + "01000000" + "01000000" + "02000000" + "6100" + "3100" + "6200" + "323200";
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("pairs encoding", () => {
  beforeAll(() => fixture("probe"), 300_000);

  it("encodes {a:'1', b:'22'} exactly as contract.md §5 shows", () => {
    expect(hex(encodePairs([["a", "1"], ["b", "22"]]))).toBe(EXAMPLE);
  });

  it("decodes the example, an empty buffer and a lone zero count", () => {
    expect(decodePairs(Buffer.from(EXAMPLE, "hex"))).toEqual([["a", "1"], ["b", "22"]]);
    expect(decodePairs(new Uint8Array())).toEqual([]);
    expect(decodePairs(Buffer.from("00000000", "hex"))).toEqual([]);
  });

  it("treats input over the host limits or truncated as an empty map (no error)", () => {
    const many = Array.from({ length: 1025 }, (_, i) => [`k${i}`, "v"] as [string, string]);
    expect(decodePairs(encodePairs(many))).toEqual([]);
    expect(decodePairs(Buffer.from(EXAMPLE.slice(0, -4), "hex"))).toEqual([]);
  });

  it("the module receives request headers in exactly this encoding", async () => {
    const host = await probeHost();
    host.callOnRequestHeaders(host.initializeHttpContext(), [["A", "1"], ["b", "22"], ["x-test-pairs-dump", "1"]], true);
    expect(last(host, "pairs ")).toBe(`pairs ${EXAMPLE}`);
  });
});
