import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // 2-core machines: keep suites in a few forks so real servers don't starve each other.
    pool: "forks",
    maxWorkers: 2,
  },
});
