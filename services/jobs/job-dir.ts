/**
 * A job's directory (psik's job base), self-contained so a compute node with
 * the same filesystem can run it:
 *
 *   spec.json        the JobSpec as submitted
 *   status.jsonl     every transition, one JSON object a line
 *   script.sh        the user's script (run by its shebang's interpreter, else bash)
 *   run/N.sh         the wrapper for run N: environment, then script.sh, reporting start and exit
 *   reports/N        what run N reported ("<ms> active", "<ms> exit <code>",
 *                    "<ms> reached <state> <info>" from `lclstream jobs reached`)
 *   logs/N.stdout    run N's output (and N.stderr)
 *   bin/mpirun       the rank launcher ($mpirun); bin/rank sets each rank's variables
 *   work/            the working directory
 */
import { appendFile, chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { toJsonString } from "@bufbuild/protobuf";
import { JobSpecSchema, type JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { TransitionRecord } from "./job-store.js";
import { JobState } from "./job-states.js";

/** The paths of one job's directory. */
export function jobPaths(root: string, id: string) {
  const dir = join(root, id);
  return {
    dir,
    spec: join(dir, "spec.json"),
    status: join(dir, "status.jsonl"),
    script: join(dir, "script.sh"),
    work: join(dir, "work"),
    bin: join(dir, "bin"),
    run: (jobndx: number) => join(dir, "run", `${jobndx}.sh`),
    report: (jobndx: number) => join(dir, "reports", String(jobndx)),
    log: (jobndx: number, stream: "stdout" | "stderr") => join(dir, "logs", `${jobndx}.${stream}`),
  };
}

export type JobPaths = ReturnType<typeof jobPaths>;

/** How ranks are started: locally by bin/mpirun itself, or by srun. */
export type Launcher = "local" | "srun";

const localMpirun = `#!/bin/bash
# Starts LCLSTREAM_PROCESS_COUNT ranks of a command on this machine, like mpirun -n N.
# Each rank sees LCLSTREAM_RANK (0..N-1) and LCLSTREAM_RANK_COUNT. When a rank fails,
# the others are stopped and its exit code is the launcher's.
n=\${LCLSTREAM_PROCESS_COUNT:-1}
pids=()
for ((rank = 0; rank < n; rank++)); do
  LCLSTREAM_RANK=$rank LCLSTREAM_RANK_COUNT=$n "$@" &
  pids+=($!)
done
code=0
for ((ended = 0; ended < n; ended++)); do
  wait -n
  c=$?
  if [ "$c" -ne 0 ] && [ "$code" -eq 0 ]; then
    code=$c
    kill "\${pids[@]}" 2>/dev/null
  fi
done
exit "$code"
`;

const srunMpirun = `#!/bin/bash
# Starts the job's ranks with srun; bin/rank gives each LCLSTREAM_RANK and LCLSTREAM_RANK_COUNT.
# A rank that fails stops the others (as the local launcher does), so the job ends now.
exec srun --export=ALL --kill-on-bad-exit=1 "$(dirname "$0")/rank" "$@"
`;

const rankShim = `#!/bin/bash
export LCLSTREAM_RANK=\${SLURM_PROCID:-0} LCLSTREAM_RANK_COUNT=\${SLURM_NTASKS:-1}
exec "$@"
`;

/** Quotes a value for bash. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A PATH for jobs that do not inherit the service's environment: this Node.js, then the system's. */
export const minimalPath = [dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(":");

/**
 * The spec as shown (GetJob, spec.json): the callback secret, kept in the job
 * queue's database only, as `*****`.
 */
export function withoutSecret(spec: JobSpec): JobSpec {
  return spec.cbSecret ? { ...spec, cbSecret: "*****" } : spec;
}

/** Creates the job's directory with its spec, script and launchers. */
export async function prepareJobDir(paths: JobPaths, spec: JobSpec, launcher: Launcher): Promise<void> {
  for (const sub of [paths.work, paths.bin, dirname(paths.run(1)), dirname(paths.report(1)), dirname(paths.log(1, "stdout"))]) {
    await mkdir(sub, { recursive: true, mode: 0o700 });
  }
  await writeFile(paths.spec, `${toJsonString(JobSpecSchema, withoutSecret(spec), { prettySpaces: 2 })}\n`);
  // Executable, so that a script with a shebang (#!/usr/bin/env python3) runs under its own interpreter, as psik runs it.
  await writeExecutable(paths.script, spec.script.endsWith("\n") ? spec.script : `${spec.script}\n`);
  await writeExecutable(join(paths.bin, "mpirun"), launcher === "srun" ? srunMpirun : localMpirun);
  await writeExecutable(join(paths.bin, "rank"), rankShim);
}

async function writeExecutable(path: string, text: string) {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

/** What one run of a job needs to know about itself. */
export interface RunContext {
  id: string;
  jobndx: number;
  spec: JobSpec;
  paths: JobPaths;
  /** The job queue's variables the run gets (inherit_environment), by name. */
  inherited: Record<string, string>;
}

/** How a backend writes its runs' scripts. */
export interface RunScriptOptions {
  /** Lines after the shebang (#SBATCH options). */
  header?: string[];
  /** A shell expression for $nodes, the job's node count; default 1. */
  nodes?: string;
}

/**
 * Writes run/N.sh: the header, the job's variables and environment, then
 * script.sh, reporting start and exit. The script's environment is exactly
 * what this file exports (and what the backend itself sets, such as SLURM_*).
 */
export async function writeRunScript(run: RunContext, options: RunScriptOptions = {}): Promise<string> {
  const { paths, spec, jobndx } = run;
  const exports = [
    ...Object.entries({ HOME: process.env.HOME ?? "/", ...run.inherited, PATH: run.inherited.PATH ?? minimalPath }),
    ["jobid", run.id],
    ["jobndx", String(jobndx)],
    ["base", paths.dir],
    ["mpirun", join(paths.bin, "mpirun")],
    ["LCLSTREAM_PROCESS_COUNT", String(spec.resources?.processCount || 1)],
    ...Object.entries(spec.environment).sort(([a], [b]) => a.localeCompare(b)),
  ];
  const workdir = spec.directory ? join(paths.work, spec.directory) : paths.work;
  const text = [
    "#!/bin/bash",
    ...(options.header ?? []),
    `# lclstream job ${run.id}, run ${jobndx}: runs script.sh and reports when it starts and how it ends.`,
    `reports=${shellQuote(paths.report(jobndx))}`,
    `report() { echo "$(date +%s%3N) $*" >> "$reports"; }`,
    ...exports.map(([k, v]) => `export ${k}=${shellQuote(v!)}`),
    `export nodes=${options.nodes ?? "1"}`,
    `mkdir -p ${shellQuote(workdir)} && cd ${shellQuote(workdir)} || { report exit 127; exit 127; }`,
    "report active",
    // With a shebang the script names its interpreter; without one it is a bash script.
    spec.script.startsWith("#!") ? shellQuote(paths.script) : `bash ${shellQuote(paths.script)}`,
    "code=$?",
    'report exit "$code"',
    'exit "$code"',
    "",
  ].join("\n");
  await writeExecutable(paths.run(jobndx), text);
  return paths.run(jobndx);
}

/** What a run reported about itself. */
export interface RunReport {
  activeTime?: number;
  exit?: { code: number; time: number };
  /** States its script reported (`lclstream jobs reached`, psik's `reached`), in order. */
  reached: { time: number; state: string; info: string }[];
}

/** Appends a state the script reports to its run's reports (what `lclstream jobs reached` does). */
export async function reportReached(base: string, jobndx: number, state: string, info: string): Promise<void> {
  const line = `${Date.now()} reached ${state}${info ? ` ${info.replace(/[\r\n]+/g, " ")}` : ""}\n`;
  await appendFile(join(base, "reports", String(jobndx)), line);
}

/** Reads run N's reports; empty when it has reported nothing yet. */
export async function readRunReport(paths: JobPaths, jobndx: number): Promise<RunReport> {
  let text: string;
  try {
    text = await readFile(paths.report(jobndx), "utf8");
  } catch {
    return { reached: [] };
  }
  const report: RunReport = { reached: [] };
  for (const line of text.split("\n")) {
    const reached = /^(\d+) reached ([a-z]+)(?: (.*))?$/.exec(line);
    if (reached) report.reached.push({ time: Number(reached[1]), state: reached[2]!, info: reached[3] ?? "" });
    const [time, what, code] = line.trim().split(" ");
    if (what === "active") report.activeTime = Number(time);
    if (what === "exit" && code !== undefined) report.exit = { code: Number(code), time: Number(time) };
  }
  return report;
}

/** Appends a transition to status.jsonl, the job's history beside its files. */
export async function appendStatus(paths: JobPaths, t: TransitionRecord): Promise<void> {
  const line = { time: new Date(t.time).toISOString(), jobndx: t.jobndx, state: JobState[t.state], info: t.info };
  await appendFile(paths.status, `${JSON.stringify(line)}\n`);
}
