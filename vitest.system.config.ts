import { defineConfig } from "vitest/config";

// `npm run test:system`: tests that need tools installed by scripts/install-system-deps.sh.
export default defineConfig({
  test: {
    include: ["test/system/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    env: { LCLSTREAM_LOG_LEVEL: "silent" },
  },
});
