/**
 * `npm run bench:check [FILE]`: reads a result of `npm run bench` (the newest
 * in bench/results/ unless FILE is given) and exits non-zero when a target was
 * not met, naming it. The benchmark itself only measures and records.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Target } from "./run.js";

const resultsDir = fileURLToPath(new URL("../../bench/results", import.meta.url));
const file =
  process.argv[2] ??
  join(
    resultsDir,
    readdirSync(resultsDir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .at(-1) ?? "",
  );
let targets: Target[];
let unmeasured: string[];
let only: string | undefined;
try {
  ({ targets, unmeasured = [], only } = JSON.parse(readFileSync(file, "utf8")) as { targets: Target[]; unmeasured?: string[]; only?: string });
} catch (error) {
  console.error(`no benchmark result to check at ${file} (${(error as Error).message}): run \`npm run bench\` first`);
  process.exit(2);
}
if (targets.some((t) => t.op === undefined)) {
  console.error(`${file} was written before targets were recorded with their bounds: run \`npm run bench\` again`);
  process.exit(2);
}
const missed = targets.filter((t) => !t.met);
for (const t of targets) console.log(`${t.met ? "ok     " : "NOT MET"}  ${t.name}: ${t.value.toFixed(2)} (target ${t.op} ${t.limit})`);
for (const name of unmeasured) console.log(`UNKNOWN  ${name}: not measured in this run (BENCH_ONLY=${only})`);
const all = targets.length + unmeasured.length;
const verdict = missed.length
  ? `${missed.length} of ${all} targets not met`
  : unmeasured.length
    ? `${unmeasured.length} of ${all} targets not measured: run \`npm run bench\` without BENCH_ONLY`
    : `all ${all} targets met`;
console.log(`\n${verdict} (${file})`);
process.exit(missed.length || unmeasured.length ? 1 : 0);
