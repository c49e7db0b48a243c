/**
 * The job queue: takes a validated spec, prepares the job directory, hands
 * runs to the backend, turns the backend's reports into transitions,
 * restarts failed runs while restarts remain, and on start reconciles every
 * unfinished job with its backend.
 */
import type { JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { Logger } from "../common/logger.js";
import type { JobBackend, RunEvents, RunOutcome } from "./backend.js";
import { appendStatus, jobPaths, prepareJobDir, readRunReport, type RunContext } from "./job-dir.js";
import { isFinal, JobState, runEnded } from "./job-states.js";
import { InvalidTransitionError, type JobRecord, type JobStore } from "./job-store.js";

/** psik's job stamp: the time in seconds with milliseconds (`1796284409.670`), as its callbacks' `jobid` must be. */
const stamp = (ms: number) => (ms / 1000).toFixed(3);

/** Options of {@link JobQueue}. */
export interface JobQueueOptions {
  store: JobStore;
  /** Where job directories live. */
  jobsDir: string;
  /** Creates the backends, given where they report. */
  backends: (events: RunEvents) => JobBackend[];
  /** The backend `default` (psik's name) and an empty backend mean; default the first one. */
  defaultBackend?: string;
  /** The job queue's variables a job with inherit_environment gets (never the whole environment). */
  inheritableVariables?: string[];
  logger: Logger;
  now?: () => number;
  /** How often running scripts' reported states (`lclstream jobs reached`) are read; default 1 s. */
  reportPollMs?: number;
}

/** The states a script may report of its own run, by psik's names. */
const reportable = new Map([
  ["active", JobState.ACTIVE],
  ["completed", JobState.COMPLETED],
  ["failed", JobState.FAILED],
  ["canceled", JobState.CANCELED],
]);

export class JobQueue {
  readonly store: JobStore;
  readonly backends: ReadonlyMap<string, JobBackend>;
  readonly #jobsDir: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #defaultBackend: string;
  readonly #inheritable: string[];
  /** Reported states already applied, by `id/jobndx`. */
  #reachedApplied = new Map<string, number>();
  readonly #reportTimer: NodeJS.Timeout;

  constructor(options: JobQueueOptions) {
    this.store = options.store;
    this.#jobsDir = options.jobsDir;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    const events: RunEvents = {
      active: (run, info) => this.#record(run.id, JobState.ACTIVE, run.jobndx, info),
      ended: (run, outcome) => this.#ended(run, outcome),
    };
    this.backends = new Map(options.backends(events).map((b) => [b.name, b]));
    this.#defaultBackend = options.defaultBackend ?? [...this.backends.keys()][0] ?? "local";
    this.#inheritable = options.inheritableVariables ?? defaultInheritableVariables;
    this.#reportTimer = setInterval(
      () => void this.#readReached().catch((error) => this.#logger.warn({ err: error }, "reading reported job states failed")),
      options.reportPollMs ?? 1000,
    );
    this.#reportTimer.unref();
    // status.jsonl mirrors every transition beside the job's files.
    this.store.on("transition", (job, t) => {
      appendStatus(jobPaths(this.#jobsDir, job.id), t).catch((error) => this.#logger.warn({ err: error, job: job.id }, "writing status.jsonl failed"));
    });
  }

  /** The backend a spec's `backend` names: `default` and empty are the default backend, unless one is called `default`. */
  backendName(name: string): string {
    return !name || (name === "default" && !this.backends.has(name)) ? this.#defaultBackend : name;
  }

  /** Submits a job, or returns the owner's job with the same request id. */
  async submit(owner: string, submitted: JobSpec, requestId?: string): Promise<JobRecord> {
    const backend = this.#backend(this.backendName(submitted.backend));
    // Recorded with the backend it runs on (`default` resolved), so jobs show where they ran.
    const spec = { ...submitted, backend: backend.name };
    const now = this.#now();
    let idTime = now;
    while (this.store.get(stamp(idTime))) idTime++;
    const { job, created } = this.store.create(
      {
        id: stamp(idTime),
        owner,
        requestId: requestId || undefined,
        backend: backend.name,
        spec,
        maxRestarts: spec.maxRestarts,
        createTime: now,
      },
      this.#environmentNote(spec),
    );
    if (!created) return job;
    const paths = jobPaths(this.#jobsDir, job.id);
    try {
      await prepareJobDir(paths, spec, backend.launcher);
      await appendStatus(paths, this.store.transitions(job.id)[0]!);
    } catch (error) {
      this.#record(job.id, JobState.FAILED, 1, `preparing the job directory failed: ${(error as Error).message}`);
      return this.store.get(job.id)!;
    }
    await this.#startRun(job.id, 1);
    return this.store.get(job.id)!;
  }

  /** Runs a finished job again as run jobndx + 1 (psik's `start`). */
  async start(id: string): Promise<JobRecord> {
    const job = this.store.get(id)!;
    const next = job.jobndx + 1;
    this.store.transition(id, { state: JobState.QUEUED, jobndx: next, info: `started again as run ${next}`, time: this.#now(), start: true });
    await this.#submitToBackend(id, next);
    return this.store.get(id)!;
  }

  /** Cancels a job; a run in progress is stopped and the job ends CANCELED. */
  async cancel(id: string): Promise<JobRecord> {
    this.store.requestCancel(id);
    const job = this.store.get(id)!;
    if (isFinal(job)) return job;
    if (job.state === JobState.NEW || job.state === JobState.FAILED) {
      this.#record(id, JobState.CANCELED, job.state === JobState.FAILED ? job.jobndx + 1 : job.jobndx, "canceled before it ran");
    } else {
      const run = this.#run(job, job.jobndx);
      await this.#backend(job.backend).cancel(run, job.backendJobId);
    }
    return this.store.get(id)!;
  }

  /** Follows every unfinished job again after a restart. */
  reconcile(): void {
    for (const job of this.store.unfinished()) {
      const backend = this.backends.get(job.backend);
      if (!backend) {
        this.#record(job.id, JobState.FAILED, job.jobndx, `backend "${job.backend}" is no longer configured`);
        continue;
      }
      if (job.state === JobState.NEW) {
        void this.#startRun(job.id, job.jobndx);
      } else if (job.state === JobState.QUEUED && !job.backendJobId) {
        // It never reached the backend: hand it over now.
        void this.#submitToBackend(job.id, job.jobndx);
      } else if (job.state === JobState.FAILED) {
        void this.#startRun(job.id, job.jobndx + 1);
      } else {
        this.#logger.info({ job: job.id, backendJobId: job.backendJobId }, "following a job started before this restart");
        backend.reattach(this.#run(job, job.jobndx), job.backendJobId, job.state === JobState.ACTIVE);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#reportTimer);
    await Promise.all([...this.backends.values()].map((b) => b.close()));
  }

  #backend(name: string): JobBackend {
    const backend = this.backends.get(name);
    if (!backend) throw new Error(`unknown backend "${name}"`);
    return backend;
  }

  #run(job: JobRecord, jobndx: number): RunContext {
    const inherited = job.spec.inheritEnvironment ? pick(process.env, this.#inheritable) : {};
    return { id: job.id, jobndx, spec: job.spec, paths: jobPaths(this.#jobsDir, job.id), inherited };
  }

  /** The first transition's info: how the job was taken, and what its environment holds. */
  #environmentNote(spec: JobSpec): string {
    if (!spec.inheritEnvironment) return "submitted; the script starts with only PATH and HOME (inherit_environment is false)";
    return `submitted; inherit_environment gives the script only the job queue's ${this.#inheritable.join(", ")}, not its whole environment as psik would (the job queue's own settings and credentials stay its own)`;
  }

  /** QUEUED for run `jobndx`, then hands it to the backend. */
  async #startRun(id: string, jobndx: number): Promise<void> {
    const job = this.store.get(id)!;
    if (job.cancelRequested) {
      this.#record(id, JobState.CANCELED, job.state === JobState.FAILED ? jobndx : job.jobndx, "canceled before it ran");
      return;
    }
    const info = jobndx > 1 ? `restart ${jobndx - 1} of ${job.maxRestarts}` : `on ${job.backend}`;
    if (!this.#record(id, JobState.QUEUED, jobndx, info)) return;
    await this.#submitToBackend(id, jobndx);
  }

  async #submitToBackend(id: string, jobndx: number): Promise<void> {
    const job = this.store.get(id)!;
    try {
      const backendJobId = await this.#backend(job.backend).start(this.#run(job, jobndx));
      this.store.setBackendJobId(id, backendJobId);
    } catch (error) {
      this.#logger.warn({ err: error, job: id }, "starting a run failed");
      this.#record(id, JobState.FAILED, jobndx, `the ${job.backend} backend could not start it: ${(error as Error).message}`);
    }
  }

  /** Applies the states running scripts reported of themselves (psik's `reached`). */
  async #readReached() {
    const applied = new Map<string, number>();
    for (const job of this.store.running()) {
      const key = `${job.id}/${job.jobndx}`;
      const { reached } = await readRunReport(jobPaths(this.#jobsDir, job.id), job.jobndx);
      for (const r of reached.slice(this.#reachedApplied.get(key) ?? 0)) {
        const state = reportable.get(r.state);
        const info = r.info || `reported by the script`;
        if (state === undefined) this.#logger.info({ job: job.id, state: r.state }, "a script reported a state it may not report");
        else if (state === JobState.ACTIVE || state === JobState.COMPLETED) this.#record(job.id, state, job.jobndx, info);
        else this.#ended(this.#run(job, job.jobndx), { info, canceled: state === JobState.CANCELED });
      }
      applied.set(key, reached.length);
    }
    this.#reachedApplied = applied;
  }

  #ended(run: RunContext, outcome: RunOutcome) {
    const job = this.store.get(run.id);
    if (!job || job.jobndx !== run.jobndx || runEnded(job.state)) return;
    let state: JobState;
    if (job.cancelRequested || outcome.canceled) state = JobState.CANCELED;
    else if (outcome.exitCode === 0) state = JobState.COMPLETED;
    else state = JobState.FAILED;
    const info = job.cancelRequested ? `canceled; ${outcome.info}` : outcome.info;
    if (!this.#record(run.id, state, run.jobndx, info, outcome.exitCode)) return;
    const after = this.store.get(run.id)!;
    if (state === JobState.FAILED && !isFinal(after)) void this.#startRun(run.id, run.jobndx + 1);
  }

  /** Records a transition; a refused one (a late or repeated report) is logged and dropped. */
  #record(id: string, state: JobState, jobndx: number, info: string, exitCode?: number): boolean {
    try {
      this.store.transition(id, { state, jobndx, info, exitCode, time: this.#now() });
      return true;
    } catch (error) {
      if (!(error instanceof InvalidTransitionError)) throw error;
      this.#logger.debug({ job: id, state: JobState[state], jobndx }, error.message);
      return false;
    }
  }
}

/** Variables a job with inherit_environment gets from the job queue unless its config says otherwise. */
export const defaultInheritableVariables = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

function pick(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env[n] === undefined ? [] : [[n, env[n]]])));
}
