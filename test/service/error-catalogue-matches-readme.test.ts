import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VARIABLES } from "../../service/config.ts";
import { ERRORS } from "../../service/errors.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const region = (() => {
  const start = readme.indexOf("<!-- service:start -->");
  const end = readme.indexOf("<!-- service:end -->");
  expect(start).toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  return readme.slice(start, end);
})();

/** Rows of the first markdown table after `heading`. */
function tableAfter(heading: string): string[][] {
  const at = region.indexOf(heading);
  expect(at, `README service region has "${heading}"`).toBeGreaterThanOrEqual(0);
  const lines = region.slice(at).split("\n");
  const first = lines.findIndex((l) => l.startsWith("|"));
  const rows: string[][] = [];
  for (let i = first + 2; i < lines.length && lines[i].startsWith("|"); i++)
    rows.push(lines[i].split("|").slice(1, -1).map((c) => c.trim()));
  return rows;
}

const unquote = (c: string) => c.replace(/^`|`$/g, "");

describe("error-catalogue-matches-readme", () => {
  const rows = tableAfter("### Error catalogue");
  const documented = new Map(rows.map((r) => [unquote(r[0]), r]));

  it("every code in service/errors.ts is in the README's table, with its status and x-mirror-cache value", () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      const row = documented.get(code);
      expect(row, `README lacks ${code}`).toBeDefined();
      expect(Number(row![1]), code).toBe(spec.status);
      expect(row![2] === "—" ? null : unquote(row![2]), code).toBe(spec.cache);
      expect(row![3].length, code).toBeGreaterThan(10);
    }
  });

  it("every code in the README's table is in service/errors.ts", () => {
    for (const code of documented.keys()) expect(ERRORS, `errors.ts lacks ${code}`).toHaveProperty(code);
    expect(rows).toHaveLength(Object.keys(ERRORS).length);
  });

  it("every variable the service reads is in the README's environment table, with its default", () => {
    const env = tableAfter("### Environment");
    const names = new Map<string, string>();
    for (const r of env) {
      const ns = r[0].split("/").map((x) => unquote(x.trim()));
      const defs = r[1].split(" / ").map((x) => unquote(x.trim()));
      ns.forEach((n, i) => names.set(n, defs[i] ?? defs[0]));
    }
    for (const [name, spec] of Object.entries(VARIABLES)) {
      expect(names.has(name), `README lacks ${name}`).toBe(true);
      expect(names.get(name), name).toBe(spec.def === undefined || spec.def === "" ? "—" : spec.def);
    }
    for (const name of names.keys()) expect(VARIABLES, `config.ts lacks ${name}`).toHaveProperty(name);
  });
});
