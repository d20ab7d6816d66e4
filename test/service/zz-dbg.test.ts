import { it, expect } from "vitest";
import { connect } from "node:net";
import { startService } from "./support/harness.ts";
it("dbg", async () => {
  const svc = await startService({ MIRROR_CACHE_MAX_BODY_BYTES: String(4 << 20) });
  for (const size of [10, 200_000, 1_000_000]) {
    const out = await new Promise<string>((resolve) => {
      const s = connect(svc.port, "127.0.0.1", () => {
        s.write(`POST /x HTTP/1.1\r\nHost: 169.254.169.254\r\nx-mirror-stack: test\r\nx-request-id: d${size}\r\nContent-Length: ${size}\r\n\r\n`);
        s.write(Buffer.alloc(size, 0x61));
      });
      let buf = ""; s.setEncoding("latin1");
      s.on("data", (d: string) => (buf += d));
      s.on("close", () => resolve(buf));
      s.on("error", () => undefined);
      setTimeout(() => s.destroy(), 2000);
    });
    console.log(size, JSON.stringify(out.slice(0, 120)));
  }
  console.log(await svc.app.metrics.registry.getSingleMetricAsString("mirror_cache_calls_total"));
  await svc.close();
}, 30000);
