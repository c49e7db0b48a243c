/**
 * JobQueueService: the RPCs over the job queue, with ownership (a job is its
 * submitter's; only the owner or an admin sees it) and the policy's say on
 * who may submit.
 */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Backend_Type, type JobQueueService, LogStream, type JobSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { AsyncQueue } from "../common/async-queue.js";
import { invalidArgument, rpcError } from "../common/errors.js";
import { abortable } from "../common/abortable.js";
import { resolveIdentityField, type Identity } from "../common/identity.js";
import { pageOf, readPage } from "../common/paging.js";
import { callerOf } from "../common/peer.js";
import type { Policy } from "../common/policy.js";
import { jobPaths, withoutSecret } from "./job-dir.js";
import type { JobQueue } from "./job-queue.js";
import { isFinal, JobState, runEnded } from "./job-states.js";
import type { JobRecord, TransitionRecord } from "./job-store.js";
import { checkJobSpec } from "./job-spec.js";

export const jobsDomain = "lclstream.jobs";

/** Bytes of log read per message. */
const logChunkBytes = 64 * 1024;

/** Dependencies of {@link createJobsService}. */
export interface JobsServiceDeps {
  queue: JobQueue;
  policy: Policy;
  jobsDir: string;
  /** URL prefixes job callbacks may go to. */
  callbackPrefixes?: string[];
  /** How often followed logs are checked for new output; default 200 ms. */
  logPollMs?: number;
}

function transitionToProto(t: TransitionRecord) {
  return { time: timestampFromMs(t.time), jobndx: t.jobndx, state: t.state, info: t.info };
}

export function createJobsService(deps: JobsServiceDeps): ServiceImpl<typeof JobQueueService> {
  const { queue, policy } = deps;
  const store = queue.store;
  const logPollMs = deps.logPollMs ?? 200;

  function toProto(job: JobRecord): MessageInitShape<typeof JobSchema> {
    return {
      name: `jobs/${job.id}`,
      spec: withoutSecret(job.spec),
      owner: job.owner,
      state: job.state,
      jobndx: job.jobndx,
      backendJobId: job.backendJobId,
      exitCode: job.exitCode ?? 0,
      transitions: store.transitions(job.id).map(transitionToProto),
      createTime: timestampFromMs(job.createTime),
      updateTime: timestampFromMs(job.updateTime),
    };
  }

  /** The caller's job by resource name; someone else's is NOT_FOUND, as if it did not exist. */
  function ownJob(name: string, ctx: HandlerContext): JobRecord {
    const caller = callerOf(ctx);
    const id = name.length <= 69 ? /^jobs\/([a-z0-9]+(?:\.[0-9]+)?)$/.exec(name)?.[1] : undefined;
    if (!id) throw invalidArgument(jobsDomain, [{ field: "name", description: `"${name}" is not a job name; job names look like jobs/ID` }]);
    const job = store.get(id);
    if (!job || (job.owner !== caller.uri && !policy.isAdmin(caller))) {
      throw rpcError(Code.NotFound, jobsDomain, "JOB_NOT_FOUND", `no job ${name} of yours; see \`lclstream jobs list\``, { metadata: { name } });
    }
    return job;
  }

  return {
    async listBackends() {
      const backends = await Promise.all(
        [...queue.backends.values()].map(async (b) => ({
          name: b.name,
          type: b.type === "slurm" ? Backend_Type.SLURM : Backend_Type.LOCAL,
          ...(await b.describe()),
        })),
      );
      return { backends };
    },

    async submitJob(req, ctx) {
      const caller = callerOf(ctx);
      if (!policy.maySubmitJobs(caller)) {
        throw rpcError(
          Code.PermissionDenied,
          jobsDomain,
          "SUBMIT_NOT_ALLOWED",
          `${caller.uri} may not submit jobs; the policy's submitters and admins may (data requests submit them for you)`,
          {
            metadata: { caller: caller.uri },
          },
        );
      }
      const violations = checkJobSpec(req.spec, {
        backends: queue.backends,
        backendName: (name) => queue.backendName(name),
        callbackPrefixes: deps.callbackPrefixes ?? [],
      });
      if (req.requestId.length > 128) violations.push({ field: "request_id", description: "at most 128 characters" });
      if (violations.length) throw invalidArgument(jobsDomain, violations);
      const job = await queue.submit(caller.uri, req.spec!, req.requestId);
      return { job: toProto(job) };
    },

    getJob(req, ctx) {
      return { job: toProto(ownJob(req.name, ctx)) };
    },

    listJobs(req, ctx) {
      const caller = callerOf(ctx);
      const page = readPage(req, jobsDomain);
      let owner: Identity | undefined;
      if (req.owner) owner = resolveIdentityField(req.owner, caller.trustDomain, jobsDomain, "owner");
      if (!policy.isAdmin(caller)) {
        if (owner && owner.uri !== caller.uri) {
          throw rpcError(Code.PermissionDenied, jobsDomain, "ADMIN_REQUIRED", "only admins may list other identities' jobs; leave owner empty for your own");
        }
        owner = caller;
      }
      const rows = store.list({ owner: owner?.uri, backend: req.backend || undefined, state: req.state || undefined }, page.offset, page.size + 1);
      const { items, nextPageToken } = pageOf(rows, page);
      return { jobs: items.map(toProto), nextPageToken };
    },

    async cancelJob(req, ctx) {
      const job = ownJob(req.name, ctx);
      if (isFinal(job)) {
        throw rpcError(
          Code.FailedPrecondition,
          jobsDomain,
          "JOB_ALREADY_ENDED",
          `${req.name} already ended ${JobState[job.state]}; there is nothing to cancel`,
          {
            metadata: { name: req.name, state: JobState[job.state] },
          },
        );
      }
      return { job: toProto(await queue.cancel(job.id)) };
    },

    async startJob(req, ctx) {
      const job = ownJob(req.name, ctx);
      if (!isFinal(job)) {
        throw rpcError(
          Code.FailedPrecondition,
          jobsDomain,
          "JOB_NOT_ENDED",
          `${req.name} is ${JobState[job.state]}; only a finished job can be started again (cancel it first to stop it)`,
          { metadata: { name: req.name, state: JobState[job.state] } },
        );
      }
      return { job: toProto(await queue.start(job.id)) };
    },

    async *watchJob(req, ctx) {
      const job = ownJob(req.name, ctx);
      const live = new AsyncQueue<[JobRecord, TransitionRecord]>();
      const onTransition = (j: JobRecord, t: TransitionRecord) => j.id === job.id && live.push([j, t]);
      store.on("transition", onTransition); // before the replay, so nothing falls between
      try {
        const past = store.transitions(job.id);
        for (const t of past) yield { transition: transitionToProto(t) };
        const last = past.at(-1)!;
        if (isFinal({ state: last.state, jobndx: last.jobndx, maxRestarts: job.maxRestarts })) return;
        for await (const [j, t] of live.drain(ctx.signal)) {
          if (t.n < past.length) continue; // the replay sent it
          yield { transition: transitionToProto(t) };
          if (isFinal(j)) return;
        }
      } finally {
        store.off("transition", onTransition);
      }
    },

    async *streamJobLogs(req, ctx) {
      const job = ownJob(req.name, ctx);
      const jobndx = req.jobndx || job.jobndx;
      if (jobndx > job.jobndx) throw invalidArgument(jobsDomain, [{ field: "jobndx", description: `job ${req.name} has had ${job.jobndx} run(s)` }]);
      const paths = jobPaths(deps.jobsDir, job.id);
      const streams = req.log === LogStream.UNSPECIFIED ? [LogStream.STDOUT, LogStream.STDERR] : [req.log];
      const offsets = new Map(streams.map((s) => [s, 0]));
      const runOver = () => {
        const now = store.get(job.id)!;
        return now.jobndx > jobndx || runEnded(now.state) || now.state === JobState.NEW;
      };
      for (;;) {
        // Checked before reading, so output written before the run ended is all read.
        const over = !req.follow || runOver();
        let read = 0;
        for (const log of streams) {
          const path = paths.log(jobndx, log === LogStream.STDOUT ? "stdout" : "stderr");
          for (;;) {
            const chunk = await readChunk(path, offsets.get(log)!);
            if (chunk.length === 0) break;
            yield { log, jobndx, offsetBytes: BigInt(offsets.get(log)!), data: chunk };
            offsets.set(log, offsets.get(log)! + chunk.length);
            read += chunk.length;
          }
        }
        if (over) return;
        if (read === 0) await abortable(new Promise((resolve) => setTimeout(resolve, logPollMs)), ctx.signal);
      }
    },
  };
}

/**
 * Up to {@link logChunkBytes} of a log from `offset`; nothing when it does not exist yet.
 * A job may not swap its log for a link to another file (a key of the
 * service's, say): links are refused, not followed.
 */
async function readChunk(path: string, offset: number): Promise<Uint8Array> {
  let file;
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP") {
      throw rpcError(
        Code.FailedPrecondition,
        jobsDomain,
        "LOG_IS_A_LINK",
        "the job replaced its log with a link to another file; the job queue reads only the log files it created",
      );
    }
    return new Uint8Array(0);
  }
  try {
    const buffer = Buffer.alloc(logChunkBytes);
    const { bytesRead } = await file.read(buffer, 0, logChunkBytes, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}
