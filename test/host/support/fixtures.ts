// Compiles the AssemblyScript fixtures under test/host/fixtures at test time (asc's programmatic
// API), cached in build/fixtures by a hash of the sources and flags. Independent of the filter.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(here, "..", "fixtures");
const OUT = join(here, "..", "..", "..", "build", "fixtures");

export const FIXTURE_DIR = FIXTURES;

function sourcesHash(name: string, flags: string[]): string {
  const h = createHash("sha256");
  h.update(flags.join(" "));
  h.update(readFileSync(join(FIXTURES, "asconfig.json")));
  h.update(readFileSync(join(FIXTURES, `${name}.ts`)));
  for (const f of readdirSync(join(FIXTURES, "lib")).sort()) h.update(readFileSync(join(FIXTURES, "lib", f)));
  return h.digest("hex").slice(0, 16);
}

const inFlight = new Map<string, Promise<string>>();

/** Path of the compiled fixture `name` (test/host/fixtures/<name>.ts). */
export function fixturePath(name: string, flags: string[] = []): Promise<string> {
  const key = `${name} ${flags.join(" ")}`;
  let p = inFlight.get(key);
  if (!p) inFlight.set(key, (p = compile(name, flags)));
  return p;
}

export async function fixture(name: string, flags: string[] = []): Promise<Uint8Array> {
  return new Uint8Array(readFileSync(await fixturePath(name, flags)));
}

async function compile(name: string, flags: string[]): Promise<string> {
  const out = join(OUT, `${name}-${sourcesHash(name, flags)}.wasm`);
  if (existsSync(out)) return out;
  mkdirSync(OUT, { recursive: true });
  const asc = await import("assemblyscript/asc");
  const tmp = `${out}.${process.pid}.tmp`;
  const stderr = asc.createMemoryStream();
  const { error } = await asc.main(
    // Own asconfig: the repository's asconfig.json belongs to the filter build.
    [join(FIXTURES, `${name}.ts`), "--config", join(FIXTURES, "asconfig.json"), "-o", tmp, "--runtime", "incremental", "--use", "abort=", "-O2", ...flags],
    { stderr },
  );
  if (error) throw new Error(`asc failed for fixture ${name}: ${error.message}\n${stderr.toString()}`);
  renameSync(tmp, out); // atomic: parallel test files may compile the same fixture
  return out;
}

export function writeBytes(path: string, bytes: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}
