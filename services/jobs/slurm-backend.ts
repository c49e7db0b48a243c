/**
 * The `slurm` backend: each run is a batch job (sbatch) whose resources map
 * to Slurm's options; `$mpirun` is srun. A run reports its own start and exit
 * into the job directory (psik's `reached`), which needs the job directory on
 * a filesystem the compute nodes share; squeue and scontrol are the fallback
 * for runs that die without reporting (canceled, timed out, node failure).
 */
import { execFile } from "node:child_process";
import type { JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { FieldViolation } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { describeExit, type BackendDescription, type JobBackend, type RunEvents } from "./backend.js";
import { readRunReport, writeRunScript, type RunContext } from "./job-dir.js";

/** Options of {@link createSlurmBackend}. */
export interface SlurmBackendOptions {
  name?: string;
  events: RunEvents;
  logger: Logger;
  /** The partition (`--partition`). */
  queueName?: string;
  /** The account (`--account`). */
  projectName?: string;
  /** The reservation (`--reservation`). */
  reservationId?: string;
  /** sbatch options every job gets unless its own attributes say otherwise (psik's BackendConfig.attributes). */
  attributes?: Record<string, string>;
  /** Extra environment for the Slurm commands, such as SLURM_CONF. */
  env?: Record<string, string>;
  /** How often runs are checked; default 1 s. */
  pollMs?: number;
}

/** sbatch options a JobSpec's attributes may set: scheduling, never what runs or where output goes. */
export const allowedSbatchAttributes = new Set([
  "begin",
  "comment",
  "constraint",
  "contiguous",
  "deadline",
  "dependency",
  "gres",
  "hint",
  "licenses",
  "mail-type",
  "mail-user",
  "mem",
  "mem-per-cpu",
  "mem-per-gpu",
  "nice",
  "priority",
  "qos",
  "signal",
  "tmp",
  "wckey",
]);

interface Tracked {
  run: RunContext;
  slurmId: string;
  activeReported: boolean;
  /** Polls in a row in which squeue did not list the job. */
  missing: number;
}

/** Runs a Slurm command; resolves with stdout, rejects with its stderr. */
function slurm(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** The #SBATCH lines of a run. */
/** An attribute's sbatch option: psik passes its keys to sbatch as they are (`--qos`), this project names the long option (`qos`). */
const sbatchOption = (key: string) => key.replace(/^--/, "");

export function sbatchHeader(run: RunContext, options: Pick<SlurmBackendOptions, "queueName" | "projectName" | "reservationId" | "attributes">): string[] {
  // The backend's attributes, then the job's over them (as psik merges them).
  const attributes = new Map<string, string>();
  for (const [key, value] of [...Object.entries(options.attributes ?? {}), ...Object.entries(run.spec.attributes)]) attributes.set(sbatchOption(key), value);
  const r = run.spec.resources;
  const opts: [string, string | undefined][] = [
    ["job-name", `${run.spec.name || "lclstream"}-${run.id}`.replace(/[^A-Za-z0-9_.-]/g, "_")],
    ["output", run.paths.log(run.jobndx, "stdout")],
    ["error", run.paths.log(run.jobndx, "stderr")],
    ["chdir", run.paths.dir],
    // Only what run/N.sh exports reaches the script (the job queue's own environment never does).
    ["export", "NONE"],
    ["time", r?.durationMinutes ? String(r.durationMinutes) : undefined],
    ["nodes", r?.nodeCount ? String(r.nodeCount) : undefined],
    ["ntasks", r?.processCount ? String(r.processCount) : undefined],
    ["ntasks-per-node", r?.processesPerNode ? String(r.processesPerNode) : undefined],
    ["cpus-per-task", r?.cpuCoresPerProcess ? String(r.cpuCoresPerProcess) : undefined],
    ["gpus-per-task", r?.gpuCoresPerProcess ? String(r.gpuCoresPerProcess) : undefined],
    ["partition", options.queueName],
    ["account", options.projectName],
    ["reservation", options.reservationId],
    ...[...attributes].sort(([a], [b]) => a.localeCompare(b)),
  ];
  // A short option (psik's `-C`) goes to sbatch as written, as psik passes it.
  const lines = opts.filter(([, v]) => v !== undefined && v !== "").map(([k, v]) => (k.startsWith("-") ? `#SBATCH ${k} ${v}` : `#SBATCH --${k}=${v}`));
  if (r?.exclusiveNodeUse) lines.push("#SBATCH --exclusive");
  return lines;
}

/** Parses `scontrol show job -o` output into its key=value fields. */
function parseScontrol(line: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of line.trim().split(/\s+/)) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return fields;
}

export function createSlurmBackend(options: SlurmBackendOptions): JobBackend {
  const { events, logger } = options;
  const env = { ...process.env, ...options.env };
  const tracked = new Map<string, Tracked>();
  let closed = false;
  let polling: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const schedule = () => {
    if (closed || timer || tracked.size === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      polling = poll()
        .catch((error) => logger.warn({ err: error }, "checking Slurm jobs failed; trying again"))
        .finally(() => {
          polling = undefined;
          schedule();
        });
    }, options.pollMs ?? 1000);
    timer.unref();
  };

  function end(t: Tracked, outcome: Parameters<RunEvents["ended"]>[1]) {
    tracked.delete(t.slurmId);
    if (!t.activeReported && outcome.exitCode !== undefined) events.active(t.run, `Slurm job ${t.slurmId}`);
    events.ended(t.run, outcome);
  }

  /** Reads what runs reported, then asks Slurm about the ones that went quiet. */
  async function poll() {
    const ids = [...tracked.keys()];
    const listed = new Map<string, string>();
    // squeue failing (the controller down or restarting) says nothing about the jobs: only their own reports count then.
    let queueAnswered = true;
    const queue = await slurm("squeue", ["-h", "-j", ids.join(","), "-o", "%i %T"], env).catch(() => ((queueAnswered = false), ""));
    for (const line of queue.split("\n")) {
      const [id, state] = line.trim().split(" ");
      if (id && state) listed.set(id, state);
    }
    for (const id of ids) {
      const t = tracked.get(id);
      if (!t) continue;
      const report = await readRunReport(t.run.paths, t.run.jobndx);
      if (!t.activeReported && (report.activeTime !== undefined || listed.get(id) === "RUNNING")) {
        t.activeReported = true;
        events.active(t.run, `Slurm job ${id}`);
      }
      if (report.exit) {
        end(t, { exitCode: report.exit.code, info: `${describeExit(report.exit.code, null)} (Slurm job ${id})` });
        continue;
      }
      if (!queueAnswered) continue;
      const state = listed.get(id);
      if (state && !["COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"].includes(state)) {
        t.missing = 0;
        continue;
      }
      // Gone from the queue without an exit report: ask scontrol what happened,
      // after a second look, since the report may land just after the job ends.
      if (++t.missing < 2) continue;
      await settleFromScontrol(t);
    }
  }

  async function settleFromScontrol(t: Tracked) {
    const shown = await slurm("scontrol", ["show", "job", "-o", t.slurmId], env).catch(() => undefined);
    if (shown === undefined) return; // the controller did not answer: ask again at the next poll
    const fields = parseScontrol(shown);
    const state = fields.get("JobState");
    const [code, signal] = (fields.get("ExitCode") ?? "").split(":").map(Number);
    const reason = fields.get("Reason");
    const why = `Slurm job ${t.slurmId} ${state ?? "is unknown to Slurm"}${reason && reason !== "None" ? ` (${reason})` : ""}`;
    if (state === "CANCELLED") end(t, { canceled: true, info: why });
    else if (state === "COMPLETED") end(t, { exitCode: code ?? 0, info: `exit code ${code ?? 0} (Slurm job ${t.slurmId})` });
    else if (state === undefined) end(t, { info: `${why}: it ended without reporting an exit code` });
    else end(t, { exitCode: code || (signal ? 128 + signal : undefined), info: why });
  }

  return {
    name: options.name ?? "slurm",
    type: "slurm",
    launcher: "srun",

    async describe(): Promise<BackendDescription> {
      const description = { queueName: options.queueName, projectName: options.projectName, reservationId: options.reservationId };
      try {
        const ping = await slurm("scontrol", ["ping"], env);
        const up = /is UP/.test(ping);
        return { ...description, available: up, statusMessage: ping.trim().replace(/\s+/g, " ") };
      } catch (error) {
        return { ...description, available: false, statusMessage: (error as Error).message };
      }
    },

    check(spec: JobSpec): FieldViolation[] {
      const violations: FieldViolation[] = [];
      for (const [key, value] of Object.entries(spec.attributes)) {
        if (!allowedSbatchAttributes.has(sbatchOption(key))) {
          violations.push({
            field: `spec.attributes["${key}"]`,
            description: `not an sbatch option jobs may set; allowed: ${[...allowedSbatchAttributes].join(", ")}`,
          });
        } else if (!/^[A-Za-z0-9_.,:=@+\-/ ]*$/.test(value)) {
          violations.push({ field: `spec.attributes["${key}"]`, description: "letters, digits, spaces and _ . , : = @ + - / only" });
        }
      }
      return violations;
    },

    async start(run) {
      // $nodes as psik sets it on Slurm: the allocation's node count.
      const script = await writeRunScript(run, { header: sbatchHeader(run, options), nodes: '"${SLURM_JOB_NUM_NODES:-1}"' });
      const out = await slurm("sbatch", ["--parsable", script], env);
      const slurmId = out.trim().split(";")[0]!;
      if (!/^\d+$/.test(slurmId)) throw new Error(`sbatch printed no job id: ${out.trim()}`);
      tracked.set(slurmId, { run, slurmId, activeReported: false, missing: 0 });
      schedule();
      return slurmId;
    },

    async cancel(_run, slurmId) {
      await slurm("scancel", [slurmId], env);
    },

    reattach(run, slurmId, active) {
      tracked.set(slurmId, { run, slurmId, activeReported: active, missing: 0 });
      schedule();
    },

    async close() {
      closed = true;
      clearTimeout(timer);
      await polling;
    },
  };
}
