/** The data request server: DataRequestService over mTLS, orchestrating the buffer and the job queue. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { z } from "zod";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { packageInfo } from "../common/package-info.js";
import { Policy } from "../common/policy.js";
import { serve } from "../common/server.js";
import { Counter, Gauge, Histogram } from "prom-client";
import { joinAsService, policySettingsShape, serviceSettingsShape, serveInMesh, type ServiceDeps } from "../common/service-config.js";
import type { BufferMember } from "./buffer-pool.js";
import { Orchestrator } from "./orchestrator.js";
import { RequestStore } from "./request-store.js";
import { createRequestService, producerConfigOf } from "./request-service.js";
import { createTransfersApi } from "./transfers-api.js";

export const requestConfigSchema = z.strictObject({
  /** Directory holding `requests/`. */
  stateDir: z.string().min(1),
  ...serviceSettingsShape,
  ...policySettingsShape,
  /** The buffer and job queue this service orchestrates. */
  bufferUrl: z.string().url(),
  /**
   * More buffers for the pool request streams and their shards are placed on, reached directly by
   * producers. Consumers reach them directly too, or, with consumerBufferUrl, through the front
   * door: the n-th of these (from 1) with the `lclstream-buffer: n` header, which the front routes on.
   */
  moreBufferUrls: z.array(z.string().url()).default([]),
  jobsUrl: z.string().url(),
  /** The buffer as producer jobs reach it (default: bufferUrl). */
  producerBufferUrl: z.string().url().optional(),
  /** The buffer as consumers reach it, told to them in each request: the front door's URL behind one (default: bufferUrl). */
  consumerBufferUrl: z.string().url().optional(),
  /** The cert directory producer jobs use to reach the buffer. */
  producerCertDir: z.string().min(1),
  defaultBackend: z.string().default("local"),
  dataRoots: z.array(z.string()).default([]),
  /** A request whose consumer group goes this long without a consumer is abandoned: jobs canceled, stream deleted. */
  abandonAfterMs: z.number().int().positive().default(600_000),
  /** The built viewer page, served at /viewer/ (for browsers through the front door); by default the one built with lclstream. */
  viewerDir: z.string().min(1).optional(),
});

/** Where `npm run build` puts the viewer page. */
const builtViewer = join(packageInfo().root, "dist", "viewer");

export type RequestConfig = z.input<typeof requestConfigSchema>;

export interface RequestServer {
  url: string;
  /** The Prometheus endpoint, when a metrics port was given. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

/** The `lclstream` script producer jobs run (found from the source tree or dist/ alike). */
const cliPath = join(packageInfo().root, "bin", "lclstream.js");

export async function build(input: RequestConfig, deps: ServiceDeps = {}): Promise<RequestServer> {
  const config = requestConfigSchema.parse(input);
  const { membership, logger } = await joinAsService("request", config, deps);
  const policy = Policy.fromConfig(config, membership.identity.trustDomain);
  const store = new RequestStore(join(config.stateDir, "requests", "requests.db"));
  const buffers: BufferMember[] = [
    {
      client: createClient(BufferService, membership.transport(config.bufferUrl)),
      producerUrl: config.producerBufferUrl ?? config.bufferUrl,
      consumerUrl: config.consumerBufferUrl ?? config.bufferUrl,
    },
    ...config.moreBufferUrls.map((url, i) => ({
      client: createClient(BufferService, membership.transport(url)),
      producerUrl: url,
      ...(config.consumerBufferUrl ? { consumerUrl: config.consumerBufferUrl, route: String(i + 1) } : { consumerUrl: url }),
    })),
  ];
  const jobs = createClient(JobQueueService, membership.transport(config.jobsUrl));
  // Registered with the server's metrics once it is up; the orchestrator observes it from the start.
  const timeToFirstBatch = new Histogram({
    name: "lclstream_request_time_to_first_batch_seconds",
    help: "From a data request's creation to its first batch in the buffer (producer job start-up included).",
    buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [],
  });
  const producerFailures = new Counter({
    name: "lclstream_request_producer_failures_total",
    help: "Producer jobs of data requests that failed, by the rank that said so (unknown: killed, or out of memory).",
    labelNames: ["rank"],
    registers: [],
  });
  const orchestrator = new Orchestrator({
    store,
    buffers,
    jobs,
    producerCertDir: config.producerCertDir,
    command: { node: process.execPath, cli: cliPath },
    logger,
    abandonAfterMs: config.abandonAfterMs,
    onFirstBatch: (seconds) => timeToFirstBatch.observe(seconds),
    onProducerFailure: (rank) => producerFailures.inc({ rank }),
  });
  // Requests a previous run left unfinished go on where they are.
  for (const r of store.unfinished()) orchestrator.start(r, producerConfigOf(r, config.dataRoots).config);
  try {
    const viewerDir = config.viewerDir ?? builtViewer;
    const server = await serveInMesh(
      "request",
      config,
      { membership, logger },
      [
        serve(
          DataRequestService,
          createRequestService({ store, orchestrator, policy, buffers, jobs, dataRoots: config.dataRoots, defaultBackend: config.defaultBackend }),
        ),
      ],
      {
        ...(existsSync(viewerDir) ? { staticFiles: { prefix: "/viewer/", dir: viewerDir } } : {}),
        // lclstream_api's REST calls, over HTTP/1.1 (what curl and requests speak) as well as HTTP/2.
        httpRoutes: createTransfersApi,
        allowHttp1: true,
      },
    );
    server.metrics.registry.registerMetric(timeToFirstBatch);
    server.metrics.registry.registerMetric(producerFailures);
    new Gauge({
      name: "lclstream_request_requests",
      help: "Data requests in each state.",
      labelNames: ["state"],
      registers: [server.metrics.registry],
      collect() {
        this.reset();
        const counts = store.countByState();
        for (const state of [State.PENDING, State.RUNNING, State.DRAINING, State.SUCCEEDED, State.FAILED, State.CANCELED])
          this.set({ state: State[state].toLowerCase() }, counts.get(state) ?? 0);
      },
    });
    return {
      url: server.url,
      metricsUrl: server.metricsUrl,
      async close() {
        await server.close();
        orchestrator.close();
        store.close();
        membership.leave();
      },
    };
  } catch (error) {
    orchestrator.close();
    store.close();
    membership.leave();
    throw error;
  }
}
