// How much CPU writing a body to a loopback socket costs when the body sits in memory out of the
// CPU's caches (as a record in the store does), written directly or first copied into a reused
// buffer that stays in cache by service/staging.ts's own `stage`, at every size given (the
// service stages only the sizes `stages` accepts). Not a target; the measurement behind
// staging's size range, to run on a machine before trusting that range there.
//
//   npx tsx bench/service/socket-copy.ts [sizes = 16384,32768,65536,131072,262144] [set GiB = 2.5]
//
// For each size: buffers filling the set are written, left alone for 3 s, then each is written
// to a socket whose reader (a child process) drains it, waiting for each write to complete as an
// answer's 'finish' does; three rounds of each way, alternating. As in the service bench, the
// writer should have a core to itself and the reader the other one: run it under `taskset -c 0`
// and the reader is started under `taskset -c 1` (READER_CPU), where taskset exists.
import { spawn, spawnSync } from "node:child_process";
import { connect, createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { stage, unstage } from "../../service/staging.ts";

if (process.argv[2] === "reader") {
  const server = createServer((s) => s.on("data", () => undefined));
  server.listen(0, "127.0.0.1", () => console.log((server.address() as AddressInfo).port));
} else {
  const sizes = (process.argv[2] ?? "16384,32768,65536,131072,262144").split(",").map(Number);
  const setBytes = Number(process.argv[3] ?? 2.5) * 2 ** 30;
  const node = [process.execPath, ...process.execArgv, new URL(import.meta.url).pathname, "reader"];
  const pinned = spawnSync("taskset", ["-V"]).status === 0;
  const readerCpu = process.env.READER_CPU ?? "1";
  const reader = pinned ? spawn("taskset", ["-c", readerCpu, ...node], { stdio: ["ignore", "pipe", "inherit"] }) : spawn(node[0], node.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((r) => reader.stdout!.once("data", (d: Buffer) => r(Number(d.toString().trim()))));
  console.log(`reader ${pinned ? `on CPU ${readerCpu}` : "not pinned (no taskset)"}`);
  const sock = connect(port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const write = (s: Socket, b: Buffer) => new Promise((r) => s.write(b, r));

  for (const size of sizes) {
    const count = Math.max(1, Math.floor(setBytes / size));
    let set: Buffer[] = [];
    for (let i = 0; i < count; i++) set.push(Buffer.alloc(size, i & 0xff));
    const pass = async (staged: boolean) => {
      for (let i = 0; i < count; i++) set[i].fill((i * 7) & 0xff); // written a moment ago, not now
      await new Promise((r) => setTimeout(r, 3000));
      const c0 = process.cpuUsage();
      for (let i = 0; i < count; i++) {
        if (!staged) {
          await write(sock, set[i]);
          continue;
        }
        const copy = stage(set[i]);
        await write(sock, copy);
        unstage(copy);
      }
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / count;
    };
    const direct: number[] = [];
    const staged: number[] = [];
    for (let round = 0; round < 3; round++) {
      direct.push(await pass(false));
      staged.push(await pass(true));
    }
    const f = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
    console.log(`${size} B × ${count}: CPU µs per write, direct ${f(direct)}; staged ${f(staged)}`);
    set = [];
  }
  sock.destroy();
  reader.kill();
}
