// Whether record bodies can sit on transparent huge pages (2 MiB) rather than 4 KiB pages: said
// once at startup, with the fix when they cannot.
//
// Why it matters: a mirror call reads its record's body once, some time after the test call wrote
// it. On the bench VM a 64 KiB body written 20–40 s earlier took 2–3.6× longer to copy on 4 KiB
// pages than one just written; on huge pages about as long at any age. Node cannot ask for huge
// pages itself; glibc's malloc, which allocates Node's buffers, does (madvise MADV_HUGEPAGE) when
// the process starts with GLIBC_TUNABLES=glibc.malloc.hugetlb=1. The image and `npm start` set it.
// README, "Performance", has the measurements.
import { readFileSync } from "node:fs";

/** The GLIBC_TUNABLES value that puts malloc on transparent huge pages: what the start's warning
 * tells to set, and what the bench runs every Node server with. */
export const HUGE_PAGES_TUNABLES = "glibc.malloc.hugetlb=1";

/** What decides it, read from the process and the kernel (`readHugePagesFacts`). */
export interface HugePagesFacts {
  /** The GLIBC_TUNABLES this process started with. */
  readonly tunables: string | undefined;
  /** The kernel's THP mode, the bracketed word of /sys/kernel/mm/transparent_hugepage/enabled
   * (`always`, `madvise`, `never`); undefined without THP support. */
  readonly thpMode: string | undefined;
  /** Node runs on glibc (not musl, not another OS's libc). */
  readonly glibc: boolean;
}

export interface HugePagesStatus {
  readonly on: boolean;
  /** A sentence: why, and, when off, what to change. */
  readonly why: string;
}

/** `glibc.malloc.hugetlb` from a GLIBC_TUNABLES value (`name=value` pairs joined by `:`). */
export function mallocHugetlb(tunables: string | undefined): string | undefined {
  let value: string | undefined;
  for (const pair of (tunables ?? "").split(":")) {
    const eq = pair.indexOf("=");
    if (eq > 0 && pair.slice(0, eq) === "glibc.malloc.hugetlb") value = pair.slice(eq + 1); // glibc: the last one wins
  }
  return value;
}

export function hugePagesStatus(f: HugePagesFacts): HugePagesStatus {
  const fix = `set GLIBC_TUNABLES=${HUGE_PAGES_TUNABLES} in the service's environment (the image sets it)`;
  if (f.thpMode === undefined || f.thpMode === "never")
    return { on: false, why: `the kernel's transparent huge pages are ${f.thpMode ?? "not available"}: record bodies sit on 4 KiB pages (THP mode madvise or always on the node allows them)` };
  if (f.thpMode === "always") return { on: true, why: "the kernel's THP mode is always" };
  if (!f.glibc) return { on: false, why: `Node does not run on glibc here, whose malloc would ask for huge pages: record bodies sit on 4 KiB pages (THP mode ${f.thpMode})` };
  const hugetlb = mallocHugetlb(f.tunables);
  if (hugetlb === "1") return { on: true, why: "GLIBC_TUNABLES has glibc.malloc.hugetlb=1 and the kernel's THP mode is madvise" };
  if (hugetlb === "2") return { on: true, why: "GLIBC_TUNABLES has glibc.malloc.hugetlb=2: large allocations use the node's reserved hugetlbfs pages while they last" };
  return { on: false, why: `${hugetlb === undefined ? "GLIBC_TUNABLES has no glibc.malloc.hugetlb" : `GLIBC_TUNABLES has glibc.malloc.hugetlb=${hugetlb}`} and the kernel's THP mode is madvise: record bodies sit on 4 KiB pages; ${fix}` };
}

export function readHugePagesFacts(env: NodeJS.ProcessEnv = process.env): HugePagesFacts {
  let thpMode: string | undefined;
  try {
    thpMode = /\[(\w+)\]/.exec(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"))?.[1];
  } catch {
    thpMode = undefined; // not Linux, or a kernel without THP
  }
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return { tunables: env.GLIBC_TUNABLES, thpMode, glibc: header?.glibcVersionRuntime !== undefined };
}
