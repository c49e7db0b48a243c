#!/usr/bin/env node
// The `lclstream` command; the code is compiled to dist/ by `npm ci` (prepare).
import("../dist/services/cli/main.js").catch((error) => {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/services/cli")) {
    console.error("lclstream is not built: run `npm ci` (or `npm run build`) in the lclstream checkout first.");
    process.exit(2);
  }
  throw error;
});
