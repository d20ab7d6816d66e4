// The mirror-cache service for the bench when service/server.ts is not used: loadConfig() from
// the environment (the contract's variables), the store it names, buildApp(), listen.
import { buildApp } from "../../../service/app.ts";
import { loadConfig } from "../../../service/config.ts";
import { createMemoryStore } from "../../../service/store/memory.ts";
import { createRedisStore } from "../../../service/store/redis.ts";

const config = loadConfig(process.env);
const store =
  config.store === "redis"
    ? createRedisStore({ url: config.redisUrl! })
    : createMemoryStore({ maxBytes: config.maxBytes });
const app = await buildApp({ config, store });
await app.listen({ port: config.port, host: config.host });
console.log(`listening ${config.port}`);
const stop = () => void app.close().then(() => store.close()).then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
