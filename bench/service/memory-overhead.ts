// Per-record memory overhead of the memory store, measured in-process:
//   node --expose-gc --import tsx bench/service/memory-overhead.ts [records] [bodyBytes]
// Puts <records> records shaped like the service's (key "<uuid>\nGET\n<authority>\n<path>\n<n>",
// four end-to-end headers with per-record strings, a body from Buffer.allocUnsafe like undici's
// Buffer.concat), and compares process.memoryUsage() (heapUsed + external) before and after,
// both after a full GC. Shapes: "typical" and "worst" (see below) put records as they are;
// "exchange" records each one as a test call does (`begin` then `put`), so the figure includes the
// tuple's sequence counter, which lives under the metadata budget. Prints one JSON line.
import { randomUUID } from "node:crypto";
import { callKey, callTuple } from "../../service/key.ts";
import { createMemoryStore } from "../../service/store/memory.ts";
import type { StoredResponse } from "../../service/store/types.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const records = Number(process.argv[2] ?? 100_000);
const bodyBytes = Number(process.argv[3] ?? 1024);

function used(): { heap: number; external: number; rss: number } {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external, rss: m.rss };
}

async function measure(shape: "typical" | "worst" | "exchange") {
  const store = createMemoryStore({ maxBytes: 64 * 1024 ** 3 });
  const before = used();
  let keyChars = 0;
  let headerChars = 0;
  for (let i = 0; i < records; i++) {
    // Built as the service builds it (service/key.ts).
    const tuple = callTuple(randomUUID(), "GET", "api.internal.example:8080", "/v1/items/" + i + "?expand=true");
    const key = shape === "exchange" ? (await store.begin(tuple, 3_600_000, 30_000)).key : callKey(tuple, 0);
    const body = Buffer.allocUnsafe(bodyBytes);
    body.fill(i & 0xff);
    // typical: the Date value changes once a second at 1,000 records/s; worst: every record has
    // its own Date value (so one header pair per record cannot be shared).
    const date = new Date(1_700_000_000_000 + (shape === "worst" ? i * 1000 : Math.floor(i / 1000) * 1000)).toUTCString();
    const headers: Array<[string, string]> = [
      ["content-type", "application/json; charset=utf-8"],
      ["content-length", String(bodyBytes)],
      ["cache-control", "max-age=600"],
      ["date", date],
    ];
    keyChars += key.length;
    for (const [n, v] of headers) headerChars += n.length + v.length;
    const value: StoredResponse = { status: 200, headers, body };
    await store.put(key, value, 3_600_000);
  }
  const after = used();
  const stats = store.stats();
  const total = after.heap + after.external - (before.heap + before.external);
  const perRecord = total / records;
  await store.close();
  return {
    shape,
    records,
    bodyBytes,
    perRecordBytes: Math.round(perRecord),
    /** Everything a record costs beyond its body: key, headers, map entry, objects. */
    overheadBeyondBody: Math.round(perRecord - bodyBytes),
    /** Beyond body + key + header characters: the structural overhead. */
    overheadBeyondPayload: Math.round(perRecord - bodyBytes - (keyChars + headerChars) / records),
    avgKeyChars: Math.round(keyChars / records),
    avgHeaderChars: Math.round(headerChars / records),
    headers: 4,
    heapPerRecord: Math.round((after.heap - before.heap) / records),
    externalPerRecord: Math.round((after.external - before.external) / records),
    /** What the store's byte budget counts per record (stats().bytes / entries). */
    accountedPerRecord: Math.round(stats.bytes / stats.entries),
  };
}

const typical = await measure("typical");
const worst = await measure("worst");
const exchange = await measure("exchange");
console.log(JSON.stringify({ typical, worst, exchange }));
