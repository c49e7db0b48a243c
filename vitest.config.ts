import { defineConfig } from "vitest/config";

// `npm test`: every test that needs only npm packages. System tests (Debian
// and other-language tools) run with `npm run test:system`.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/system/**", "test/unit/**", "node_modules/**"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    env: { LCLSTREAM_LOG_LEVEL: "silent" },
  },
});
