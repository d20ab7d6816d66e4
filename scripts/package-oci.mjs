#!/usr/bin/env node
// Packages build/filter.wasm as a Wasm OCI image layout (the "compat" variant Istio pulls,
// ../shared/proxy-wasm/istio.md §3) and writes a WasmPlugin pinned to the manifest digest.
//
//   npm run package                       # = npm run build && node scripts/package-oci.mjs
//   node scripts/package-oci.mjs [--wasm build/filter.wasm] [--out dist] [--repository REPO] [--tag TAG]
//
// Output (in --out, default dist/):
//   oci/oci-layout, oci/index.json, oci/blobs/sha256/<hex>   an OCI image layout, one manifest
//   wasmplugin.yaml                                           WasmPlugins (from envoy/istio/base) pinned
//                                                             to oci://REPO:TAG with sha256 = manifest digest
//   oci-digest.txt                                            the manifest digest (sha256:<hex>)
//
// The image: one layer application/vnd.oci.image.layer.v1.tar+gzip holding plugin.wasm, manifest
// annotation module.wasm.image/variant=compat, an OCI image config blob. Everything is
// deterministic (tar entries with mtime 0, uid/gid 0; gzip header without a timestamp; JSON with a
// fixed key order), so the same .wasm always gives the same manifest digest on the same Node/zlib.
// Istio compares WasmPlugin.spec.sha256 with the *manifest* digest for oci:// URLs.
//
// Push the layout without a Docker daemon (digest preserved):
//   skopeo copy --preserve-digests oci:dist/oci:TAG docker://REPO:TAG
//   oras cp --from-oci-layout dist/oci:TAG REPO:TAG
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { parseAllDocuments, stringify } from "yaml";

export const MEDIA_TYPES = Object.freeze({
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
});
export const VARIANT_ANNOTATION = "module.wasm.image/variant";
export const DEFAULT_REPOSITORY = "registry.example.com/mesh-mirror/filter";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

// ---- ustar writer (one regular file) ----------------------------------------------------------

function octal(value, width) {
  // width includes the trailing NUL
  const s = value.toString(8);
  if (s.length > width - 1) throw new Error(`tar: ${value} does not fit in ${width - 1} octal digits`);
  return s.padStart(width - 1, "0") + "\0";
}

/** A POSIX ustar archive with one regular file, fixed metadata (mode 0644, uid/gid 0, mtime 0). */
export function tarSingleFile(name, data) {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name too long: ${name}`);
  const header = Buffer.alloc(512, 0);
  const put = (offset, str) => header.write(str, offset, "latin1");
  put(0, name); // name
  put(100, octal(0o644, 8)); // mode
  put(108, octal(0, 8)); // uid
  put(116, octal(0, 8)); // gid
  put(124, octal(data.length, 12)); // size
  put(136, octal(0, 12)); // mtime
  put(148, "        "); // chksum placeholder: 8 spaces
  put(156, "0"); // typeflag: regular file
  put(257, "ustar\0"); // magic
  put(263, "00"); // version
  put(265, "root"); // uname
  put(297, "root"); // gname
  let sum = 0;
  for (const b of header) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([header, data, Buffer.alloc(pad, 0), Buffer.alloc(1024, 0)]);
}

// ---- the image --------------------------------------------------------------------------------

function descriptor(mediaType, bytes, annotations) {
  const d = { mediaType, digest: `sha256:${sha256(bytes)}`, size: bytes.length };
  if (annotations) d.annotations = annotations;
  return d;
}

/**
 * Builds the blobs of the compat image for `wasm` (a Buffer). Pure: no I/O.
 * Returns { blobs: Map<hex, Buffer>, manifest, manifestBytes, manifestDigest, index, indexBytes }.
 */
export function buildImage(wasm, { tag = "latest", title = "plugin.wasm" } = {}) {
  if (wasm.length < 8 || wasm.readUInt32BE(0) !== 0x0061736d || wasm.readUInt32LE(4) !== 1) {
    throw new Error("not a WebAssembly binary module (magic \\0asm, version 1)");
  }
  const tar = tarSingleFile("plugin.wasm", wasm);
  // level 9, no file name, mtime 0 in the gzip header (Node writes 0): deterministic.
  const layer = gzipSync(tar, { level: 9 });
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: [`sha256:${sha256(tar)}`] },
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: descriptor(MEDIA_TYPES.config, config),
    layers: [descriptor(MEDIA_TYPES.layer, layer, { "org.opencontainers.image.title": title })],
    annotations: { [VARIANT_ANNOTATION]: "compat" },
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = `sha256:${sha256(manifestBytes)}`;
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: [
      descriptor(MEDIA_TYPES.manifest, manifestBytes, { "org.opencontainers.image.ref.name": tag }),
    ],
  };
  const indexBytes = Buffer.from(JSON.stringify(index, null, 2) + "\n");
  const blobs = new Map();
  for (const b of [config, layer, manifestBytes]) blobs.set(sha256(b), b);
  return { blobs, tar, layer, config, manifest, manifestBytes, manifestDigest, index, indexBytes };
}

/** Writes the OCI image layout into `dir` (emptied first). */
export function writeLayout(dir, image) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }) + "\n");
  writeFileSync(join(dir, "index.json"), image.indexBytes);
  for (const [hex, bytes] of image.blobs) writeFileSync(join(dir, "blobs", "sha256", hex), bytes);
}

/**
 * The WasmPlugins of envoy/istio/base/wasmplugin and envoy/istio/base/inbound, with `url` set to
 * oci://REPOSITORY:TAG and `sha256` to the manifest digest (hex), as one multi-document YAML.
 * Names and namespaces are those of the base; apply after the overlay (same objects, updated).
 */
export function pinnedWasmPlugins({ repository, tag, manifestDigest, root = ROOT }) {
  const files = [
    "envoy/istio/base/wasmplugin/wasmplugin-test.yaml",
    "envoy/istio/base/wasmplugin/wasmplugin-mirror.yaml",
    "envoy/istio/base/inbound/wasmplugin-mirror-inbound.yaml",
  ];
  const hex = manifestDigest.replace(/^sha256:/, "");
  const out = [];
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(join(root, f), "utf8"))) {
      const obj = doc.toJSON();
      if (!obj || obj.kind !== "WasmPlugin") continue;
      obj.metadata.annotations = { ...(obj.metadata.annotations ?? {}), "mesh-mirror/oci-manifest-digest": manifestDigest };
      obj.spec.url = `oci://${repository}:${tag}`;
      obj.spec.sha256 = hex;
      obj.spec.imagePullPolicy = "IfNotPresent";
      out.push(stringify(obj, { lineWidth: 0 }));
    }
  }
  return (
    "# Generated by scripts/package-oci.mjs: WasmPlugins pinned to the OCI manifest digest.\n" +
    `# Image: oci://${repository}:${tag}  manifest ${manifestDigest}\n` +
    out.map((d) => `---\n${d}`).join("")
  );
}

function parseArgs(argv) {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const args = {
    wasm: join(ROOT, "build", "filter.wasm"),
    out: join(ROOT, "dist"),
    repository: process.env.MESH_MIRROR_OCI_REPOSITORY || DEFAULT_REPOSITORY,
    tag: process.env.MESH_MIRROR_OCI_TAG || pkg.version,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!["--wasm", "--out", "--repository", "--tag"].includes(k) || v === undefined) {
      throw new Error(`usage: package-oci.mjs [--wasm FILE] [--out DIR] [--repository REPO] [--tag TAG] (bad argument ${k})`);
    }
    args[k.slice(2)] = k === "--wasm" || k === "--out" ? resolve(v) : v;
    i++;
  }
  if (!/^[\w][\w.-]{0,127}$/.test(args.tag)) throw new Error(`invalid OCI tag: ${args.tag}`);
  if (!/^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$/.test(args.repository)) throw new Error(`invalid repository: ${args.repository}`);
  return args;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  let wasm;
  try {
    wasm = readFileSync(args.wasm);
  } catch {
    throw new Error(`${args.wasm} not found: run \`npm run build\` first (or \`npm run package\`)`);
  }
  const image = buildImage(wasm, { tag: args.tag });
  const layoutDir = join(args.out, "oci");
  writeLayout(layoutDir, image);
  writeFileSync(join(args.out, "oci-digest.txt"), image.manifestDigest + "\n");
  writeFileSync(
    join(args.out, "wasmplugin.yaml"),
    pinnedWasmPlugins({ repository: args.repository, tag: args.tag, manifestDigest: image.manifestDigest }),
  );
  console.log(`OCI image layout: ${layoutDir} (tag ${args.tag})`);
  console.log(`plugin.wasm sha256:${sha256(wasm)} (${wasm.length} bytes)`);
  console.log(`manifest digest: ${image.manifestDigest}`);
  console.log(`pinned WasmPlugins: ${join(args.out, "wasmplugin.yaml")}`);
  const shown = relative(process.cwd(), layoutDir) || ".";
  console.log(`push: skopeo copy --preserve-digests oci:${shown}:${args.tag} docker://${args.repository}:${args.tag}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (err) {
    console.error(`package-oci: ${err.message}`);
    process.exit(1);
  }
}
