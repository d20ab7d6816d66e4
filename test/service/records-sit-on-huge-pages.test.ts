// The service started as the image and `npm start` start it (GLIBC_TUNABLES=glibc.malloc.hugetlb=1)
// keeps the bodies it records on transparent huge pages; started without, it says so and how to fix
// it. service/huge-pages.ts says why this matters (a record's age costs its read on 4 KiB pages).
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { hugePagesStatus, mallocHugetlb, readHugePagesFacts } from "../../service/huge-pages.ts";
import { rid, send, spawnServer, startUpstream, type ServerProcess, type Upstream } from "./support/harness.ts";

/** AnonHugePages of a process, in bytes. */
function anonHugeBytes(pid: number): number {
  const m = /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
  return Number(m![1]) * 1024;
}

const host = readHugePagesFacts({});
const thpUsable = host.glibc && (host.thpMode === "madvise" || host.thpMode === "always");

describe("records-sit-on-huge-pages", () => {
  let up: Upstream | undefined;
  let svc: ServerProcess | undefined;
  afterEach(async () => {
    svc?.child.kill("SIGKILL");
    await up?.close();
    svc = up = undefined;
  });

  it.skipIf(!thpUsable)("with the image's GLIBC_TUNABLES: the start says huge pages, and 16 MiB of recorded 64 KiB bodies sit on them", async () => {
    const body = Buffer.alloc(64 * 1024, "b");
    up = await startUpstream((_q, res) => res.end(body));
    svc = await spawnServer({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" });
    expect(JSON.parse(await svc.line(/mirror-cache listening/)).hugePages).toBe(true);
    const before = anonHugeBytes(svc.child.pid!);
    for (let i = 0; i < 256; i++) {
      const a = await send(svc.port, { host: up.authority, stack: "test", rid: rid("huge"), path: `/b${i}` });
      expect(a.headers["x-mirror-cache"]).toBe("pass");
      expect(a.body.length).toBe(body.length);
    }
    // at least half the bodies' 16 MiB on 2 MiB pages (the rest may share pages with other memory)
    expect(anonHugeBytes(svc.child.pid!) - before).toBeGreaterThanOrEqual(8 * 1024 * 1024);
  });

  it.skipIf(!(host.glibc && host.thpMode === "madvise"))("without it (THP mode madvise): the start warns that bodies sit on 4 KiB pages and names the fix", async () => {
    svc = await spawnServer({ GLIBC_TUNABLES: "" });
    expect(JSON.parse(await svc.line(/mirror-cache listening/)).hugePages).toBe(false);
    const warn = JSON.parse(await svc.line(/not on huge pages/));
    expect(warn.level).toBe(40);
    expect(warn.msg).toContain("GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
  });
});

describe("hugePagesStatus", () => {
  const madvise = { thpMode: "madvise", glibc: true } as const;
  it("is on with glibc.malloc.hugetlb=1 or 2 (the last one given wins, as in glibc) under THP mode madvise", () => {
    expect(hugePagesStatus({ ...madvise, tunables: "glibc.malloc.hugetlb=1" }).on).toBe(true);
    expect(hugePagesStatus({ ...madvise, tunables: "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2" }).on).toBe(true);
    expect(hugePagesStatus({ ...madvise, tunables: "glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0" }).on).toBe(false);
    expect(mallocHugetlb("glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0")).toBe("0");
  });

  it("is off without the tunable under madvise, and the reason names the variable to set", () => {
    for (const tunables of [undefined, "", "glibc.malloc.hugetlb=0", "glibc.malloc.arena_max=2"]) {
      const s = hugePagesStatus({ ...madvise, tunables });
      expect(s.on).toBe(false);
      expect(s.why).toContain("set GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
    }
  });

  it("follows the kernel first: always is on whatever the tunable, never (or no THP) is off whatever it", () => {
    expect(hugePagesStatus({ thpMode: "always", glibc: false, tunables: undefined }).on).toBe(true);
    expect(hugePagesStatus({ thpMode: "never", glibc: true, tunables: "glibc.malloc.hugetlb=1" })).toMatchObject({ on: false, why: expect.stringContaining("never") });
    expect(hugePagesStatus({ thpMode: undefined, glibc: true, tunables: "glibc.malloc.hugetlb=1" }).on).toBe(false);
  });

  it("is off without glibc (musl, another OS) under madvise: no malloc there reads the tunable", () => {
    expect(hugePagesStatus({ thpMode: "madvise", glibc: false, tunables: "glibc.malloc.hugetlb=1" })).toMatchObject({ on: false, why: expect.stringContaining("glibc") });
  });
});
