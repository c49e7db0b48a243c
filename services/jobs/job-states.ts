/**
 * The job state machine (psik's): NEW -> QUEUED -> ACTIVE -> COMPLETED |
 * FAILED | CANCELED. A failed run may be followed by a new run (jobndx + 1,
 * QUEUED again, or CANCELED when the job is canceled first) while restarts
 * remain; a finished job may be started again (psik's `start`) as a new
 * run. Anything else is refused, so a late or repeated report can never
 * move a job backwards.
 */
import { Job_State as State } from "../../gen/lclstream/jobs/v1/jobs_pb.js";

export { State as JobState };

const next: Record<State, readonly State[]> = {
  [State.UNSPECIFIED]: [],
  [State.NEW]: [State.QUEUED, State.FAILED, State.CANCELED],
  [State.QUEUED]: [State.ACTIVE, State.FAILED, State.CANCELED],
  [State.ACTIVE]: [State.COMPLETED, State.FAILED, State.CANCELED],
  [State.FAILED]: [State.QUEUED, State.CANCELED], // a restart as a new run, or its cancellation
  [State.COMPLETED]: [],
  [State.CANCELED]: [],
};

/** psik's JobState names (psik/models.py), in its order: this project's states, lower-case. */
export const psikStateNames = ["new", "queued", "active", "completed", "failed", "canceled"] as const;

/** A state's psik name, as callbacks and lclstream_api report it. */
export const psikName = (state: State): string => State[state].toLowerCase();

/** Where a job is: its state, its run and how often it may still restart. */
export interface JobPosition {
  state: State;
  jobndx: number;
  maxRestarts: number;
}

/**
 * Why a transition is refused, or undefined when it is allowed. `start` is a
 * finished job started again: QUEUED as run jobndx + 1.
 */
export function refuseTransition(from: JobPosition, to: State, jobndx: number, start = false): string | undefined {
  if (start) {
    if (!isFinal(from)) return `a job that has not finished (it is ${State[from.state]}) cannot be started again`;
    if (to !== State.QUEUED || jobndx !== from.jobndx + 1) return `a job started again is QUEUED as run ${from.jobndx + 1}`;
    return undefined;
  }
  if (!next[from.state].includes(to)) return `a job cannot go from ${State[from.state]} to ${State[to]}`;
  if (from.state === State.FAILED) {
    if (jobndx !== from.jobndx + 1) return `a restart must be run ${from.jobndx + 1}, not ${jobndx}`;
    if (from.jobndx > from.maxRestarts) return `no restarts left (max_restarts ${from.maxRestarts})`;
    return undefined;
  }
  if (jobndx !== from.jobndx) return `run ${jobndx} is not the current run ${from.jobndx}`;
  return undefined;
}

/** True when the job will change no more: done, canceled, or failed with no restart left. */
export function isFinal(position: JobPosition): boolean {
  return position.state === State.COMPLETED || position.state === State.CANCELED || (position.state === State.FAILED && position.jobndx > position.maxRestarts);
}

/** True when the current run has ended (the job may still restart). */
export function runEnded(state: State): boolean {
  return state === State.COMPLETED || state === State.FAILED || state === State.CANCELED;
}
