/** bench/README.md shows the newest full benchmark result, as bench/table.ts renders it. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { newestFullResult, renderBenchTables, withTables } from "../../bench/table.js";

const benchDir = fileURLToPath(new URL("../../bench", import.meta.url));

describe("bench/README.md", () => {
  it("holds the tables of the newest full result (run `npm run bench:table` after `npm run bench`)", () => {
    const readme = readFileSync(`${benchDir}/README.md`, "utf8");
    const { file, result } = newestFullResult(`${benchDir}/results`);
    expect(readme).toBe(withTables(readme, renderBenchTables(file, result)));
    expect(readme).toContain(`bench/results/${file}`);
  });
});
