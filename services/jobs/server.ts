/**
 * The job queue server: JobQueueService over mTLS, its jobs and their
 * directories under `<state-dir>/jobs/`, the configured backends.
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { Policy } from "../common/policy.js";
import { serve } from "../common/server.js";
import { joinAsService, policySettingsShape, serviceSettingsShape, serveInMesh, type ServiceDeps } from "../common/service-config.js";
import { JobCallbacks } from "./callbacks.js";
import { createJobsService } from "./jobs-service.js";
import { JobQueue } from "./job-queue.js";
import { JobStore } from "./job-store.js";
import { createLocalBackend } from "./local-backend.js";
import { createSlurmBackend } from "./slurm-backend.js";

const backendSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("local"),
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/)
      .default("local"),
  }),
  z.strictObject({
    type: z.literal("slurm"),
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/)
      .default("slurm"),
    /** Partition (`--partition`). */
    queueName: z.string().optional(),
    /** Account (`--account`). */
    projectName: z.string().optional(),
    reservationId: z.string().optional(),
    /** Environment for sbatch, squeue, scontrol and scancel (SLURM_CONF for a non-default cluster). */
    env: z.record(z.string(), z.string()).optional(),
    pollMs: z.number().int().min(50).default(1000),
  }),
]);

/** The job queue server's configuration. */
export const jobsConfigSchema = z.strictObject({
  /** Directory holding `jobs/` (the database and one directory per job). */
  stateDir: z.string().min(1),
  ...serviceSettingsShape,
  ...policySettingsShape,
  backends: z
    .array(backendSchema)
    .min(1)
    .default([{ type: "local", name: "local" }]),
  /** The backend a JobSpec's `backend: default` (psik's default) or an empty one means; default the first backend. */
  defaultBackend: z.string().optional(),
  /**
   * URL prefixes job callbacks may be sent to (psik's `callback`), such as
   * `https://monitor.example.org/hooks/`; none by default, so a job cannot make
   * the service POST anywhere.
   */
  callbackUrlPrefixes: z.array(z.string().url()).default([]),
  /** The job queue's variables a job with inherit_environment gets (never its whole environment). */
  inheritableVariables: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).optional(),
});

export type JobsConfig = z.input<typeof jobsConfigSchema>;

/** A running job queue. */
export interface JobsServer {
  url: string;
  queue: JobQueue;
  close(): Promise<void>;
}

/** Starts the job queue: reconciles unfinished jobs, then serves. */
export async function build(input: JobsConfig, deps: ServiceDeps = {}): Promise<JobsServer> {
  const config = jobsConfigSchema.parse(input);
  const { membership, logger } = await joinAsService("jobs", config, deps);
  const policy = Policy.fromConfig(config, membership.identity.trustDomain);
  // Absolute, since job scripts run from their own directories.
  const jobsDir = resolve(config.stateDir, "jobs");
  const store = new JobStore(join(jobsDir, "jobs.db"));
  const defaultBackend = config.defaultBackend ?? config.backends[0]!.name;
  if (!config.backends.some((b) => b.name === defaultBackend)) {
    throw new Error(`defaultBackend "${defaultBackend}" is not one of the configured backends (${config.backends.map((b) => b.name).join(", ")})`);
  }
  const callbacks = new JobCallbacks({ store, logger });
  const queue = new JobQueue({
    store,
    jobsDir,
    logger,
    defaultBackend,
    inheritableVariables: config.inheritableVariables,
    backends: (events) =>
      config.backends.map((b) => (b.type === "local" ? createLocalBackend({ ...b, events, logger }) : createSlurmBackend({ ...b, events, logger }))),
  });
  queue.reconcile();
  try {
    const server = await serveInMesh("jobs", config, { membership, logger }, [
      serve(JobQueueService, createJobsService({ queue, policy, jobsDir, callbackPrefixes: config.callbackUrlPrefixes })),
    ]);
    return {
      url: server.url,
      queue,
      async close() {
        await server.close();
        await queue.close();
        await callbacks.close();
        membership.leave();
        store.close();
      },
    };
  } catch (error) {
    await queue.close();
    await callbacks.close();
    membership.leave();
    store.close();
    throw error;
  }
}
