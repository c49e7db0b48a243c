/**
 * The job queue's durable record: every job (its spec, owner, backend and
 * where it is) and every transition in order. Transitions are checked
 * against the state machine inside one SQLite transaction, so concurrent
 * reports cannot interleave into an impossible history.
 */
import { EventEmitter } from "node:events";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { JobSpecSchema, type JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { openDatabase, type Db } from "../common/storage.js";
import { isFinal, JobState, refuseTransition } from "./job-states.js";

const migrations = [
  `CREATE TABLE jobs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     owner TEXT NOT NULL,
     request_id TEXT,
     backend TEXT NOT NULL,
     spec BLOB NOT NULL,
     state INTEGER NOT NULL,
     jobndx INTEGER NOT NULL,
     max_restarts INTEGER NOT NULL,
     backend_job_id TEXT NOT NULL DEFAULT '',
     exit_code INTEGER,
     cancel_requested INTEGER NOT NULL DEFAULT 0,
     create_time INTEGER NOT NULL,
     update_time INTEGER NOT NULL,
     UNIQUE (owner, request_id)
   );
   CREATE INDEX jobs_state ON jobs (state);
   CREATE TABLE transitions (
     job_seq INTEGER NOT NULL REFERENCES jobs (seq),
     n INTEGER NOT NULL,
     time INTEGER NOT NULL,
     jobndx INTEGER NOT NULL,
     state INTEGER NOT NULL,
     info TEXT NOT NULL,
     PRIMARY KEY (job_seq, n)
   );`,
];

/** A transition as recorded. */
export interface TransitionRecord {
  /** Its place in the job's history, from 0 (NEW). */
  n: number;
  time: number;
  jobndx: number;
  state: JobState;
  info: string;
}

/** A job as recorded. */
export interface JobRecord {
  id: string;
  owner: string;
  requestId?: string;
  backend: string;
  spec: JobSpec;
  state: JobState;
  jobndx: number;
  maxRestarts: number;
  backendJobId: string;
  exitCode?: number;
  cancelRequested: boolean;
  createTime: number;
  updateTime: number;
}

/** Thrown when a transition would break the state machine. */
export class InvalidTransitionError extends Error {}

/** Filters of {@link JobStore.list}. */
export interface JobFilter {
  owner?: string;
  backend?: string;
  state?: JobState;
}

/**
 * Emits `transition` (job, transition) after each recorded transition.
 */
export class JobStore extends EventEmitter<{ transition: [JobRecord, TransitionRecord] }> {
  readonly #db: Db;

  constructor(path: string) {
    super();
    this.setMaxListeners(0); // one per watcher
    this.#db = openDatabase(path, migrations);
  }

  close(): void {
    this.#db.close();
  }

  /**
   * Records a NEW job, `info` saying how it was taken; with a `requestId`
   * already used by the owner, returns that job instead.
   */
  create(
    job: Omit<JobRecord, "state" | "jobndx" | "backendJobId" | "cancelRequested" | "updateTime">,
    info = "submitted",
  ): { job: JobRecord; created: boolean } {
    return this.#db.transaction(() => {
      if (job.requestId) {
        const existing = this.#db.prepare("SELECT * FROM jobs WHERE owner = ? AND request_id = ?").get(job.owner, job.requestId);
        if (existing) return { job: toRecord(existing), created: false };
      }
      const inserted = this.#db
        .prepare(
          `INSERT INTO jobs (id, owner, request_id, backend, spec, state, jobndx, max_restarts, create_time, update_time)
           VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
        )
        .run(
          job.id,
          job.owner,
          job.requestId ?? null,
          job.backend,
          toBinary(JobSpecSchema, job.spec),
          JobState.NEW,
          job.maxRestarts,
          job.createTime,
          job.createTime,
        );
      this.#db.prepare("INSERT INTO transitions VALUES (?, 0, ?, 1, ?, ?)").run(inserted.lastInsertRowid, job.createTime, JobState.NEW, info);
      return { job: this.get(job.id)!, created: true };
    })();
  }

  get(id: string): JobRecord | undefined {
    const row = this.#db.prepare("SELECT * FROM jobs WHERE id = ?").get(id);
    return row ? toRecord(row) : undefined;
  }

  /** Jobs in submission order, `limit` from `offset`. */
  list(filter: JobFilter, offset: number, limit: number): JobRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.owner) where.push("owner = ?"), args.push(filter.owner);
    if (filter.backend) where.push("backend = ?"), args.push(filter.backend);
    if (filter.state) where.push("state = ?"), args.push(filter.state);
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq LIMIT ? OFFSET ?`;
    return this.#db
      .prepare(sql)
      .all(...args, limit, offset)
      .map(toRecord);
  }

  /** Jobs whose state may still change, for reconciling after a restart. */
  unfinished(): JobRecord[] {
    return this.#db
      .prepare(`SELECT * FROM jobs WHERE state NOT IN (${JobState.COMPLETED}, ${JobState.CANCELED})`)
      .all()
      .map(toRecord)
      .filter((job) => !isFinal(job));
  }

  /** Jobs whose current run is queued or running. */
  running(): JobRecord[] {
    return this.#db.prepare(`SELECT * FROM jobs WHERE state IN (${JobState.QUEUED}, ${JobState.ACTIVE})`).all().map(toRecord);
  }

  transitions(id: string): TransitionRecord[] {
    return this.#db
      .prepare("SELECT t.n, t.time, t.jobndx, t.state, t.info FROM transitions t JOIN jobs j ON j.seq = t.job_seq WHERE j.id = ? ORDER BY t.n")
      .all(id) as TransitionRecord[];
  }

  /**
   * Records a transition when the state machine allows it; throws
   * {@link InvalidTransitionError} otherwise. `exitCode` updates the job when
   * given; QUEUED starts a run, which has no backend id until it is handed over.
   */
  transition(id: string, to: { state: JobState; jobndx: number; info: string; time: number; exitCode?: number; start?: boolean }): JobRecord {
    const [job, transition] = this.#db.transaction(() => {
      const row = this.#db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as Record<string, unknown> | undefined;
      if (!row) throw new InvalidTransitionError(`no job ${id}`);
      const from = toRecord(row);
      const refused = refuseTransition(from, to.state, to.jobndx, to.start);
      if (refused) throw new InvalidTransitionError(`job ${id}: ${refused}`);
      if (to.start) {
        // Started again: no cancel pending, and the new run has the spec's restarts again.
        this.#db.prepare("UPDATE jobs SET cancel_requested = 0, max_restarts = ? WHERE id = ?").run(from.jobndx + from.spec.maxRestarts, id);
      }
      this.#db
        .prepare(
          `UPDATE jobs SET state = ?, jobndx = ?, update_time = ?,
             exit_code = CASE WHEN ? THEN ? ELSE exit_code END,
             backend_job_id = CASE WHEN ? THEN '' ELSE backend_job_id END
           WHERE id = ?`,
        )
        .run(to.state, to.jobndx, to.time, to.exitCode !== undefined ? 1 : 0, to.exitCode ?? null, to.state === JobState.QUEUED ? 1 : 0, id);
      const n = (this.#db.prepare("SELECT MAX(n) AS n FROM transitions WHERE job_seq = ?").get(row.seq) as { n: number }).n + 1;
      this.#db.prepare("INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?)").run(row.seq, n, to.time, to.jobndx, to.state, to.info);
      return [this.get(id)!, { n, time: to.time, jobndx: to.jobndx, state: to.state, info: to.info }] as const;
    })();
    this.emit("transition", job, transition);
    return job;
  }

  /** Marks a job as asked to cancel, so its end counts as CANCELED. */
  requestCancel(id: string): void {
    this.#db.prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ?").run(id);
  }

  /** Records where the backend runs the current run (a pid, a Slurm job id). */
  setBackendJobId(id: string, backendJobId: string): void {
    this.#db.prepare("UPDATE jobs SET backend_job_id = ? WHERE id = ?").run(backendJobId, id);
  }
}

function toRecord(row: unknown): JobRecord {
  const r = row as Record<string, unknown>;
  return {
    id: r.id as string,
    owner: r.owner as string,
    requestId: (r.request_id as string | null) ?? undefined,
    backend: r.backend as string,
    spec: fromBinary(JobSpecSchema, r.spec as Uint8Array),
    state: r.state as JobState,
    jobndx: r.jobndx as number,
    maxRestarts: r.max_restarts as number,
    backendJobId: r.backend_job_id as string,
    exitCode: (r.exit_code as number | null) ?? undefined,
    cancelRequested: r.cancel_requested === 1,
    createTime: r.create_time as number,
    updateTime: r.update_time as number,
  };
}
