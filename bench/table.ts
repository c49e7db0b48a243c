/**
 * The benchmark tables of bench/README.md, made from a result of `npm run
 * bench` (the newest full run in bench/results/). `npm run bench` rewrites
 * them after a full run; `npm run bench:table` does it by hand, and a test
 * checks that the README shows the newest result.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Target } from "./run.js";

/** What `npm run bench` writes. */
export interface BenchResult {
  machine: { cpuModel: string; cpus: number; node: string };
  reps: number;
  /** Targets a run of some scenarios (BENCH_ONLY) did not measure. */
  unmeasured?: string[];
  results: Record<string, { values: number[]; median: number; spread: number; unit: string }>;
  targets: Target[];
  fanOutCeiling?: number;
  /** 4 groups' aggregate against one group's: 2x where cores are to spare. */
  fanOutVsOneGroup?: number;
  /** What two cores allow the DataLoader against the grpcio reader (the rings' handing alone and the reader each keep both busy). */
  loaderCeiling?: number;
  /** What two cores allow a psana producer against the bare loop (psana's CPU and raw TLS one hop's, added up). */
  psanaCeiling?: number;
  /** What two cores allow any relay with TLS on both hops against pyzmq's (four AES-GCM passes and copies a MiB, nothing else). */
  tlsRelayCeiling?: number;
  /** Raw Node TLS's relay, CPU per MiB of its three processes, against the floor of the relay's CPU target. */
  rawRelayVsFloor?: number;
  /** The relay's CPU per MiB against 4 AES-GCM passes and the 8 copies TLS in user space makes (OpenSSL's and the kernel's). */
  relayVsUserSpaceTls?: number;
  /** The TS consumer against a bare reader that gathers each message into one buffer, as gRPC clients do. */
  consumerVsGathered?: number;
}

const start = "<!-- bench-table:start (made by `npm run bench:table`; do not edit) -->";
const end = "<!-- bench-table:end -->";

/** The newest result of a full run (one not limited by BENCH_ONLY) in `dir`. */
export function newestFullResult(dir: string): { file: string; result: BenchResult } {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .reverse();
  for (const name of files) {
    const result = JSON.parse(readFileSync(join(dir, name), "utf8")) as BenchResult;
    if (result.targets.length && !result.unmeasured?.length) return { file: name, result };
  }
  throw new Error(`no full benchmark result in ${dir}: run \`npm run bench\``);
}

const figure = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

/** The targets and every measure of `result`, as Markdown. */
export function renderBenchTables(file: string, result: BenchResult): string {
  const m = result.machine;
  const lines = [
    `From \`bench/results/${file}\` (${m.cpus} × ${m.cpuModel}, Node ${m.node}; each figure the median of ${result.reps} runs).`,
    "",
    "| target | this run | bound | |",
    "|---|---|---|---|",
    ...result.targets.map((t) => `| ${t.name} | ${figure(t.value)} | ${t.op} ${t.limit} | ${t.met ? "met" : "**not met**"} |`),
  ];
  const references: [number | undefined, string][] = [
    [result.tlsRelayCeiling, "any relay with TLS on both hops vs pyzmq relay: the ceiling two cores allow"],
    [result.fanOutCeiling, "raw TLS, 4 sinks vs 1: the machine's fan-out ceiling"],
    [result.fanOutVsOneGroup, "4 groups vs 1 group aggregate: 2x on a machine with cores to spare"],
    [result.loaderCeiling, "DataLoader vs grpcio reader: the ceiling two cores allow"],
    [result.psanaCeiling, "psana producer vs bare loop: the ceiling two cores allow psana and raw Node TLS"],
    [result.rawRelayVsFloor, "raw TLS relay CPU per MiB vs 4 AES-GCM passes + 4 copies: where Node's TLS itself stands"],
    [result.relayVsUserSpaceTls, "relay CPU per MiB vs 4 AES-GCM passes + 8 copies: what TLS in user space must copy (OpenSSL's records and the kernel's)"],
    [result.consumerVsGathered, "TS consumer vs a bare reader that gathers each message, as every gRPC client does"],
  ];
  for (const [value, what] of references) if (value !== undefined) lines.push(`| (not a target) ${what} | ${figure(value)} | | |`);
  lines.push("", "| measure | median | runs | spread (max − min) / median |", "|---|---|---|---|");
  for (const [name, r] of Object.entries(result.results)) {
    const spread = r.values.length > 1 ? `${(r.spread * 100).toFixed(0)}%` : "";
    lines.push(`| ${name} | ${figure(r.median)} ${r.unit} | ${r.values.length} | ${spread} |`);
  }
  return lines.join("\n");
}

/** `readme` with its generated section replaced by `tables`. */
export function withTables(readme: string, tables: string): string {
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error("bench/README.md has lost its bench-table markers");
  return `${readme.slice(0, from + start.length)}\n${tables}\n${readme.slice(to)}`;
}

/** Rewrites bench/README.md's tables from the newest full result. */
export function updateBenchReadme(benchDir: string): string {
  const { file, result } = newestFullResult(join(benchDir, "results"));
  const readmePath = join(benchDir, "README.md");
  writeFileSync(readmePath, withTables(readFileSync(readmePath, "utf8"), renderBenchTables(file, result)));
  return file;
}

/** The bench folder of the source tree (this file runs from dist/bench). */
export const benchSourceDir = fileURLToPath(new URL("../../bench", import.meta.url));

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(`bench/README.md now shows ${updateBenchReadme(benchSourceDir)}`);
}
