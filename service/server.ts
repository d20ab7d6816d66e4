// Entry point (`npm start`): read and validate the configuration once, create the store, build
// the app, listen on HOST:PORT, shut down gracefully on SIGTERM / SIGINT (stop accepting, drain
// in-flight calls, close the store, exit 0).
import pino from "pino";
import { buildApp } from "./app.ts";
import { ConfigError, loadConfig, unknownVariables, type Config } from "./config.ts";
import { hugePagesStatus, readHugePagesFacts } from "./huge-pages.ts";
import type { CacheStore } from "./store/types.ts";

async function createStore(config: Readonly<Config>): Promise<CacheStore> {
  if (config.store === "redis") {
    const { createRedisStore } = await import("./store/redis.ts");
    return createRedisStore({ url: config.redisUrl! });
  }
  const { createMemoryStore } = await import("./store/memory.ts");
  return createMemoryStore({ maxBytes: config.maxBytes });
}

async function main(): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mirror-cache: invalid configuration, not starting:\n${err.errors.map((e) => `  - ${e}`).join("\n")}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { service: "mirror-cache" } });
  for (const name of unknownVariables(process.env)) log.warn({ variable: name }, `unknown variable ${name} ignored (a typo?)`);

  const store = await createStore(config);
  const app = await buildApp({ config, store, logger: log, defaultMetrics: true });
  await app.listen({ port: config.port, host: config.host });
  const addr = app.server.address();
  const hugePages = hugePagesStatus(readHugePagesFacts());
  log.info({ address: addr, store: store.kind, waitMs: config.waitMs, ttlMs: config.ttlMs, hugePages: hugePages.on }, "mirror-cache listening");
  // Only the memory store keeps bodies in this process; on Linux, where the fix applies.
  if (!hugePages.on && store.kind === "memory" && process.platform === "linux") log.warn({ hugePages: false }, `record bodies are not on huge pages: ${hugePages.why}`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: draining in-flight calls");
    const force = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, "drain timed out; closing remaining connections");
      app.server.closeAllConnections();
    }, config.shutdownTimeoutMs);
    force.unref();
    app
      .close()
      .then(() => store.close())
      .then(
        () => {
          clearTimeout(force);
          log.info("stopped");
          log.flush?.();
          process.exit(0);
        },
        (err) => {
          log.error({ err }, "error during shutdown");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((err) => {
  process.stderr.write(`mirror-cache: failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
