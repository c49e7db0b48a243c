// `npm run build:viewer`: the viewer page, bundled into dist/viewer (served by `lclstream view`).
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "./",
  build: { outDir: "../dist/viewer", emptyOutDir: true, target: "es2022" },
});
