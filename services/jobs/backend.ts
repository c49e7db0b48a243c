/**
 * What a job backend does (psik's backends): start a run of a job, report
 * when it becomes active and how it ends, cancel it, and pick up runs started
 * before a restart. The job queue turns reports into transitions.
 */
import type { JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { FieldViolation } from "../common/errors.js";
import type { Launcher, RunContext } from "./job-dir.js";

/** How a run ended, as the backend saw it. */
export interface RunOutcome {
  /** The script's exit code, when it exited. */
  exitCode?: number;
  /** True when the backend knows the run was canceled (scancel, a signal it sent). */
  canceled?: boolean;
  /** Why, for the transition's info: "exit code 3", "killed by SIGKILL", a Slurm reason. */
  info: string;
}

/** Where a backend's reports go (the job queue). */
export interface RunEvents {
  active(run: RunContext, info: string): void;
  ended(run: RunContext, outcome: RunOutcome): void;
}

/** A backend as ListBackends describes it. */
export interface BackendDescription {
  available: boolean;
  statusMessage: string;
  queueName?: string;
  projectName?: string;
  reservationId?: string;
}

export interface JobBackend {
  readonly name: string;
  readonly type: "local" | "slurm";
  /** How `$mpirun` starts ranks on this backend. */
  readonly launcher: Launcher;
  describe(): Promise<BackendDescription>;
  /** What this backend cannot do of `spec`, as field violations. */
  check(spec: JobSpec): FieldViolation[];
  /**
   * Starts a run; resolves with the backend's id for it (a process id, a
   * Slurm job id) once it is queued. `active` and `ended` follow through the
   * events, never before this resolves.
   */
  start(run: RunContext): Promise<string>;
  /** Asks the backend to stop a run; `ended` follows. */
  cancel(run: RunContext, backendJobId: string): Promise<void>;
  /** Follows a run started before the job queue restarted. */
  reattach(run: RunContext, backendJobId: string, active: boolean): void;
  /** Stops following runs; runs themselves go on. */
  close(): Promise<void>;
}

/** "exit code N" or the signal, for a transition's info. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `killed by ${signal}`;
  // bash reports death by signal N as 128 + N.
  if (code !== null && code > 128 && code < 128 + 32) return `exit code ${code} (signal ${code - 128})`;
  return `exit code ${code}`;
}
