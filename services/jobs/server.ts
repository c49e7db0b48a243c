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

const backendName = z.string().regex(/^[a-z][a-z0-9-]*$/, "backend names are lower-case letters, digits and -, starting with a letter");
/** psik's BackendConfig fields, which every backend takes (the local one has no queue and leaves them unused). */
const backendConfigShape = {
  /** Partition (`--partition`). */
  queueName: z.string().optional(),
  /** Account (`--account`). */
  projectName: z.string().optional(),
  /** Reservation (`--reservation`). */
  reservationId: z.string().optional(),
  /** sbatch options every job gets unless its own attributes say otherwise (`qos`, or psik's `--qos`). */
  attributes: z.record(z.string(), z.string({ error: "values are strings" })).optional(),
};

const backendUnion = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ type: z.literal("local"), name: backendName.default("local"), ...backendConfigShape }),
    z.strictObject({
      type: z.literal("slurm"),
      name: backendName.default("slurm"),
      ...backendConfigShape,
      /** Environment for sbatch, squeue, scontrol and scancel (SLURM_CONF for a non-default cluster). */
      env: z.record(z.string(), z.string()).optional(),
      pollMs: z.number().int().min(50).default(1000),
    }),
  ],
  { error: "a backend's type is local or slurm (psik's other backends, such as nersc or globus, are not run here)" },
);

const backendSchema = z.preprocess(
  // psik.json writes BackendConfig's fields in snake_case, and a backend without a type is local.
  (value) =>
    value && typeof value === "object" && !Array.isArray(value)
      ? { type: "local", ...Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), v])) }
      : value,
  backendUnion,
);

const jobsConfigObject = z.strictObject({
  /** Directory holding `jobs/` (the database and one directory per job). */
  stateDir: z.string().min(1),
  ...serviceSettingsShape,
  ...policySettingsShape,
  /** A list, or psik's mapping of backend names to BackendConfig (`{default: {type: local}}`). */
  backends: z
    .preprocess(
      (value) =>
        value && typeof value === "object" && !Array.isArray(value)
          ? Object.entries(value).map(([name, backend]) => ({ ...(backend as object), name }))
          : value,
      z.array(backendSchema).min(1),
    )
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

/** The job queue server's configuration; a psik.json's `prefix` is its state directory. */
export const jobsConfigSchema = z.preprocess((value) => {
  if (!value || typeof value !== "object" || !("prefix" in value)) return value;
  const { prefix, ...rest } = value as Record<string, unknown>;
  return { ...rest, stateDir: prefix };
}, jobsConfigObject);

/** The config as code writes it (a config file may also give psik's `prefix` and backends by name). */
export type JobsConfig = Omit<z.input<typeof jobsConfigObject>, "backends"> & { backends?: z.input<typeof backendUnion>[] };

/** A running job queue. */
export interface JobsServer {
  url: string;
  /** The Prometheus endpoint, when a metrics port was given. */
  metricsUrl: string | undefined;
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
      metricsUrl: server.metricsUrl,
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
