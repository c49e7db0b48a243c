/**
 * The `local` backend: each run is a child process in its own process group
 * (so cancel reaches every rank and every background process the script
 * started), with its output in the job's log files. Runs outlive the job
 * queue; after a restart they are found again by process id.
 */
import { spawn } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { FieldViolation } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { describeExit, type BackendDescription, type JobBackend, type RunEvents } from "./backend.js";
import { minimalPath, readRunReport, writeRunScript, type RunContext } from "./job-dir.js";

/** Options of {@link createLocalBackend}. */
export interface LocalBackendOptions {
  name?: string;
  events: RunEvents;
  logger: Logger;
  /** After SIGTERM, how long before the group gets SIGKILL; default 5 s. */
  killGraceMs?: number;
  /** How often a reattached run is checked; default 500 ms. */
  pollMs?: number;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export function createLocalBackend(options: LocalBackendOptions): JobBackend {
  const { events, logger } = options;
  const killGraceMs = options.killGraceMs ?? 5000;
  const pollMs = options.pollMs ?? 500;
  const timers = new Set<NodeJS.Timeout>();
  const after = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    t.unref();
    timers.add(t);
  };
  /** After close, runs go on but nothing is reported: the next job queue finds them again. */
  let closed = false;
  /** Why the service itself stopped a run (a duration limit), by process id. */
  const stoppedBecause = new Map<number, string>();

  function stop(pid: number, reason?: string) {
    if (reason) stoppedBecause.set(pid, reason);
    signalGroup(pid, "SIGTERM");
    after(killGraceMs, () => groupAlive(pid) && signalGroup(pid, "SIGKILL"));
  }

  /** Ends a run whose process is not our child: its report says how. */
  async function settleFromReport(run: RunContext, pid: number) {
    const report = await readRunReport(run.paths, run.jobndx);
    if (report.exit) events.ended(run, { exitCode: report.exit.code, info: describeExit(report.exit.code, null) });
    else events.ended(run, { info: `process ${pid} ended while the job queue was not watching, without reporting an exit code` });
  }

  return {
    name: options.name ?? "local",
    type: "local",
    launcher: "local",

    async describe(): Promise<BackendDescription> {
      return { available: true, statusMessage: "runs jobs as process groups on this machine" };
    },

    check(spec: JobSpec): FieldViolation[] {
      const r = spec.resources;
      const violations: FieldViolation[] = [];
      if ((r?.nodeCount ?? 0) > 1)
        violations.push({ field: "spec.resources.node_count", description: "the local backend has one node; use the slurm backend for more" });
      if ((r?.gpuCoresPerProcess ?? 0) > 0)
        violations.push({ field: "spec.resources.gpu_cores_per_process", description: "the local backend does not schedule GPUs; use the slurm backend" });
      return violations;
    },

    async start(run) {
      const script = await writeRunScript(run);
      // Only what run/N.sh exports reaches the script: never the job queue's own environment.
      const env = { PATH: minimalPath, HOME: process.env.HOME ?? "/" };
      const out = openSync(run.paths.log(run.jobndx, "stdout"), "a");
      const err = openSync(run.paths.log(run.jobndx, "stderr"), "a");
      let child;
      try {
        child = spawn("bash", [script], { cwd: run.paths.dir, env, detached: true, stdio: ["ignore", out, err] });
      } finally {
        closeSync(out);
        closeSync(err);
      }
      const pid = await new Promise<number>((resolve, reject) => {
        child.once("spawn", () => resolve(child.pid!));
        child.once("error", reject);
      });
      child.unref();
      child.once("exit", (code, signal) => {
        if (closed) return;
        const stoppedFor = stoppedBecause.get(pid);
        stoppedBecause.delete(pid);
        // Stray processes of the group (a script's background jobs) go with it.
        if (groupAlive(pid)) stop(pid);
        setImmediate(() => closed || events.ended(run, stoppedFor ? { info: stoppedFor } : { exitCode: code ?? undefined, info: describeExit(code, signal) }));
      });
      setImmediate(() => closed || events.active(run, `process group ${pid}`));
      const minutes = run.spec.resources?.durationMinutes ?? 0;
      if (minutes > 0) {
        after(minutes * 60_000, () => groupAlive(pid) && stop(pid, `exceeded its duration limit of ${minutes} minutes`));
      }
      return String(pid);
    },

    async cancel(_run, backendJobId) {
      stop(Number(backendJobId));
    },

    reattach(run, backendJobId, active) {
      const pid = Number(backendJobId);
      const ours = async () => {
        // A recycled process id must not be mistaken for the run: check its command line.
        const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => undefined);
        return cmdline === undefined ? groupAlive(pid) : cmdline.includes(run.paths.run(run.jobndx));
      };
      const check = async () => {
        if (closed) return;
        if (await ours()) {
          after(pollMs, () => void check());
          return;
        }
        await settleFromReport(run, pid);
      };
      if (!active) setImmediate(() => events.active(run, `process group ${pid}, found again after a restart`));
      void check().catch((error) => logger.error({ err: error, job: run.id }, "following a local run failed"));
    },

    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
