/**
 * The job queue server: JobQueueService over mTLS, its jobs and their
 * directories under `<state-dir>/jobs/`, the configured backends.
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { createLogger, type Logger } from "../common/logger.js";
import { joinMesh } from "../common/mesh.js";
import { readCertDir, type CertMaterial } from "../common/pki.js";
import { Policy } from "../common/policy.js";
import type { RevocationSet } from "../common/revocation.js";
import { createServer, serve, serverSettingsSchema } from "../common/server.js";
import { createJobsService } from "./jobs-service.js";
import { JobQueue } from "./job-queue.js";
import { JobStore } from "./job-store.js";
import { createLocalBackend } from "./local-backend.js";
import { createSlurmBackend } from "./slurm-backend.js";

const backendSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("local"),
    name: z.string().regex(/^[a-z][a-z0-9-]*$/).default("local"),
  }),
  z.strictObject({
    type: z.literal("slurm"),
    name: z.string().regex(/^[a-z][a-z0-9-]*$/).default("slurm"),
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
  /** The service's cert directory; or pass `tls` to build. */
  certDir: z.string().optional(),
  /** The CA's mTLS endpoint: renew the certificate and follow revocations. */
  caUrl: z.string().url().optional(),
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(0),
  metricsPort: serverSettingsSchema.shape.metricsPort,
  proxyIdentity: z.string().optional(),
  /** Policy file (admins, submitters); or the lists inline. */
  policyFile: z.string().optional(),
  admins: z.array(z.string()).default([]),
  submitters: z.array(z.string()).default([]),
  backends: z.array(backendSchema).min(1).default([{ type: "local", name: "local" }]),
});

export type JobsConfig = z.input<typeof jobsConfigSchema>;

/** What `build` may be given besides the config (in-process meshes, tests). */
export interface JobsDeps {
  tls?: CertMaterial;
  revocations?: RevocationSet;
  logger?: Logger;
}

/** A running job queue. */
export interface JobsServer {
  url: string;
  queue: JobQueue;
  close(): Promise<void>;
}

/** Starts the job queue: reconciles unfinished jobs, then serves. */
export async function build(input: JobsConfig, deps: JobsDeps = {}): Promise<JobsServer> {
  const config = jobsConfigSchema.parse(input);
  const logger = deps.logger ?? createLogger("jobs");
  const tls = deps.tls ?? (config.certDir ? await readCertDir(config.certDir) : undefined);
  if (!tls) throw new Error("the job queue needs a certificate: set certDir (see `lclstream ca issue`)");
  const membership = await joinMesh({ tls, caUrl: config.caUrl, certDir: config.certDir, revocations: deps.revocations, logger });
  const trustDomain = membership.identity.trustDomain;
  const policy = Policy.fromConfig(config, trustDomain);
  // Absolute, since job scripts run from their own directories.
  const jobsDir = resolve(config.stateDir, "jobs");
  const store = new JobStore(join(jobsDir, "jobs.db"));
  const queue = new JobQueue({
    store,
    jobsDir,
    logger,
    backends: (events) =>
      config.backends.map((b) => (b.type === "local" ? createLocalBackend({ ...b, events, logger }) : createSlurmBackend({ ...b, events, logger }))),
  });
  queue.reconcile();
  try {
    const server = await createServer({
      name: "jobs",
      tls: membership.tls,
      trustDomain,
      revocations: membership.revocations,
      proxyIdentity: config.proxyIdentity,
      host: config.host,
      port: config.port,
      metricsPort: config.metricsPort,
      logger,
      services: [serve(JobQueueService, createJobsService({ queue, policy, jobsDir }))],
    });
    membership.attach(server);
    return {
      url: server.url,
      queue,
      async close() {
        await server.close();
        await queue.close();
        membership.leave();
        store.close();
      },
    };
  } catch (error) {
    await queue.close();
    membership.leave();
    store.close();
    throw error;
  }
}
