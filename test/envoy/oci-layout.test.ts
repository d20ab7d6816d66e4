// scripts/package-oci.mjs: the Wasm OCI image layout Istio pulls (compat variant, istio.md §3) and
// the WasmPlugin pinned to its manifest digest. Structure, media types, blob digests and sizes, the
// layer's tar content, determinism (two runs -> the same digest), CRD validation of the output.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { FILTER_WASM, loadYamlDocs, ROOT, validateIstio } from "./helpers.ts";

const SCRIPT = join(ROOT, "scripts", "package-oci.mjs");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const tmp: string[] = [];

afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

/** A small valid module (magic + version + an empty custom section), standing in for build/filter.wasm. */
function fixtureWasm(): Buffer {
  const name = Buffer.from("mesh-mirror-fixture");
  return Buffer.concat([Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x00, name.length + 1, name.length]), name]);
}

function runPackage(wasm: string, extra: string[] = []): { out: string; stdout: string } {
  const out = mkdtempSync(join(tmpdir(), "oci-"));
  tmp.push(out);
  const r = spawnSync(process.execPath, [SCRIPT, "--wasm", wasm, "--out", out, ...extra], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`package-oci failed: ${r.stderr}`);
  return { out, stdout: r.stdout };
}

/** Minimal ustar reader: [{ name, size, mode, mtime, uid, gid, type, data }]. */
function untar(buf: Buffer): { name: string; size: number; mode: number; mtime: number; uid: number; gid: number; type: string; data: Buffer }[] {
  const out = [];
  let off = 0;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a: number, n: number) => h.subarray(a, a + n).toString("latin1").replace(/\0.*$/s, "");
    const oct = (a: number, n: number) => parseInt(str(a, n).trim() || "0", 8);
    // checksum: header bytes with the checksum field read as spaces
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    expect(oct(148, 8)).toBe(sum);
    expect(str(257, 6)).toBe("ustar");
    const size = oct(124, 12);
    out.push({ name: str(0, 100), size, mode: oct(100, 8), uid: oct(108, 8), gid: oct(116, 8), mtime: oct(136, 12), type: str(156, 1), data: buf.subarray(off + 512, off + 512 + size) });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function checkLayout(dir: string, wasm: Buffer): { manifestDigest: string } {
  expect(JSON.parse(readFileSync(join(dir, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  expect(index.schemaVersion).toBe(2);
  expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
  expect(index.manifests.length).toBe(1);
  const blob = (digest: string) => {
    expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    return readFileSync(join(dir, "blobs", "sha256", digest.slice(7)));
  };
  const check = (d: { digest: string; size: number }) => {
    const b = blob(d.digest);
    expect(b.length).toBe(d.size);
    return b;
  };
  // every blob's sha256 equals its file name
  const names = readdirSync(join(dir, "blobs", "sha256"));
  for (const n of names) expect(sha256(readFileSync(join(dir, "blobs", "sha256", n)))).toBe(n);
  expect(names.length).toBe(3); // manifest, config, layer

  const md = index.manifests[0];
  expect(md.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
  expect(md.annotations["org.opencontainers.image.ref.name"]).toMatch(/^[\w][\w.-]*$/);
  const manifest = JSON.parse(check(md).toString("utf8"));
  expect(manifest.schemaVersion).toBe(2);
  expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
  expect(manifest.annotations).toEqual({ "module.wasm.image/variant": "compat" });
  expect(manifest.config.mediaType).toBe("application/vnd.oci.image.config.v1+json");
  expect(manifest.layers.length).toBe(1);
  expect(manifest.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");

  const layer = check(manifest.layers[0]);
  expect(layer.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  expect(layer.readUInt32LE(4), "gzip header mtime").toBe(0);
  const tar = gunzipSync(layer);
  const entries = untar(tar);
  expect(entries.map((e) => e.name)).toEqual(["plugin.wasm"]);
  expect(entries[0].type).toBe("0");
  expect(entries[0].data.equals(wasm)).toBe(true);
  expect([entries[0].mtime, entries[0].uid, entries[0].gid, entries[0].mode]).toEqual([0, 0, 0, 0o644]);

  const config = JSON.parse(check(manifest.config).toString("utf8"));
  expect(config.rootfs).toEqual({ type: "layers", diff_ids: [`sha256:${sha256(tar)}`] });
  expect(config.os).toBeDefined();
  expect(config.architecture).toBeDefined();
  return { manifestDigest: md.digest };
}

describe("scripts/package-oci.mjs", () => {
  const dir = mkdtempSync(join(tmpdir(), "oci-fixture-"));
  tmp.push(dir);
  const wasmPath = join(dir, "plugin.wasm");
  writeFileSync(wasmPath, fixtureWasm());

  it("writes an OCI image layout of the compat variant: structure, media types, digests, sizes, plugin.wasm", () => {
    const { out, stdout } = runPackage(wasmPath);
    const { manifestDigest } = checkLayout(join(out, "oci"), fixtureWasm());
    expect(stdout).toContain(`manifest digest: ${manifestDigest}`);
    expect(readFileSync(join(out, "oci-digest.txt"), "utf8").trim()).toBe(manifestDigest);
  });

  it("is deterministic: two runs give byte-identical layouts and the same digest", () => {
    const a = runPackage(wasmPath);
    const b = runPackage(wasmPath);
    const files = (d: string) => readdirSync(join(d, "oci", "blobs", "sha256")).sort();
    expect(files(a.out)).toEqual(files(b.out));
    expect(readFileSync(join(a.out, "oci", "index.json"))).toEqual(readFileSync(join(b.out, "oci", "index.json")));
    expect(readFileSync(join(a.out, "oci-digest.txt"), "utf8")).toBe(readFileSync(join(b.out, "oci-digest.txt"), "utf8"));
  });

  it("a different module gives a different digest", () => {
    const other = join(dir, "other.wasm");
    writeFileSync(other, Buffer.concat([fixtureWasm(), Buffer.from([0x00, 0x02, 0x01, 0x78])]));
    const a = runPackage(wasmPath);
    const b = runPackage(other);
    expect(readFileSync(join(a.out, "oci-digest.txt"), "utf8")).not.toBe(readFileSync(join(b.out, "oci-digest.txt"), "utf8"));
  });

  it("writes WasmPlugins pinned to the manifest digest, valid against the CRD schema", () => {
    const { out } = runPackage(wasmPath, ["--repository", "registry.example.com/team/filter", "--tag", "1.2.3"]);
    const digest = readFileSync(join(out, "oci-digest.txt"), "utf8").trim();
    const docs = loadYamlDocs(join(out, "wasmplugin.yaml"));
    expect(docs.map((d) => d.metadata.name).sort()).toEqual(["mesh-mirror-mirror", "mesh-mirror-mirror-inbound", "mesh-mirror-test"]);
    for (const d of docs) {
      expect(d.kind).toBe("WasmPlugin");
      expect(d.spec.url).toBe("oci://registry.example.com/team/filter:1.2.3");
      expect(`sha256:${d.spec.sha256}`).toBe(digest);
      expect(validateIstio(d), d.metadata.name).toEqual([]);
    }
    const index = JSON.parse(readFileSync(join(out, "oci", "index.json"), "utf8"));
    expect(index.manifests[0].annotations["org.opencontainers.image.ref.name"]).toBe("1.2.3");
  });

  it("refuses a file that is not a wasm module, with a clear message", () => {
    const bad = join(dir, "bad.wasm");
    writeFileSync(bad, "not wasm");
    const r = spawnSync(process.execPath, [SCRIPT, "--wasm", bad, "--out", join(dir, "never")], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not a WebAssembly binary module/);
    const missing = spawnSync(process.execPath, [SCRIPT, "--wasm", join(dir, "missing.wasm"), "--out", join(dir, "never")], { encoding: "utf8" });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/npm run build/);
  });

  it("packages the real build/filter.wasm (npm run build)", () => {
    expect(existsSync(FILTER_WASM), "build/filter.wasm: run `npm run build` (npm test does)").toBe(true);
    const { out } = runPackage(FILTER_WASM);
    const { manifestDigest } = checkLayout(join(out, "oci"), readFileSync(FILTER_WASM));
    const again = runPackage(FILTER_WASM);
    expect(readFileSync(join(again.out, "oci-digest.txt"), "utf8").trim()).toBe(manifestDigest);
  });

  it("npm run package builds first and runs this script", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(pkg.scripts.package).toBe("npm run build && node scripts/package-oci.mjs");
  });
});
