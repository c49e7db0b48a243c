import { defineConfig } from "vitest/config";

// The unit tier: one component's logic, no sockets, no processes. `npm test`
// runs it first, then the wire and end-to-end tiers (vitest.config.ts).
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    testTimeout: 60_000,
    env: { LCLSTREAM_LOG_LEVEL: "silent" },
  },
});
