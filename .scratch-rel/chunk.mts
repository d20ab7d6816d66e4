import { connect } from "node:net";
import { startFaultUpstream, startServiceProcess } from "/work/main/test/reliability/support.ts";
const up = await startFaultUpstream();
const svc = await startServiceProcess({ MIRROR_CACHE_MAX_BODY_BYTES: String(64 * 1024) });
for (const total of [200 * 1024, 4 << 20]) {
  const out = await new Promise<string>((resolve) => {
    const c = connect(svc.port, "127.0.0.1");
    let out = ""; c.setEncoding("latin1");
    c.on("data", (d: string) => (out += d)); c.on("error", (e) => resolve(out + " ERR " + e.message)); c.on("close", () => resolve(out));
    c.write(`POST /ok HTTP/1.1\r\nhost: ${up.authority}\r\nx-mirror-stack: test\r\nx-request-id: r${total}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`);
    const chunk = Buffer.alloc(65536, 0x7a);
    (async () => { for (let s = 0; s < total; s += 65536) { const ok = c.write(Buffer.concat([Buffer.from("10000\r\n"), chunk, Buffer.from("\r\n")])); if (!ok) await new Promise((r) => c.once("drain", r)); } c.write("0\r\n\r\n"); })().catch(() => {});
    setTimeout(() => { c.destroy(); }, 6000);
  });
  console.log(total, JSON.stringify(out.slice(0, 300)), up.seen.length, up.inFlight);
}
console.log(svc.output().slice(-2000));
await svc.kill(); await up.close();
