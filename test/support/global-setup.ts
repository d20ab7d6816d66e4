// One redis-server for the whole run, on a free loopback port; suites read its URL with
// `inject("redisUrl")`. A missing redis-server fails the run with the install command.
import type { TestProject } from "vitest/node";
import { startRedis, type RedisServer } from "./redis-server.ts";

let redis: RedisServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  redis = await startRedis();
  project.provide("redisUrl", redis.url);
}

export async function teardown(): Promise<void> {
  await redis?.destroy();
}

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
