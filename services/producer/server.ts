/** The producer server: ProducerService over mTLS, with a catalog of sources. */
import { z } from "zod";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { serve, serverSettingsSchema } from "../common/server.js";
import { Policy } from "../common/policy.js";
import { joinAsService, policySettingsShape, serviceSettingsShape, serveInMesh, type ServiceDeps } from "../common/service-config.js";
import { createProducerService, type CatalogEntry } from "./producer-service.js";

/** The sources every producer offers: the synthetic facility, ready to stream. */
/** A synthetic source's config: InternalEventSource with lclstream's simulated detectors, batches in the native format. */
const synthetic = (run: string, seed: number, events: number, rateHz: number, dataSources: object, steps: object[] = []) => ({
  source_identifier: `synthetic:${run}:run=1`,
  skip_incomplete_events: false,
  event_source: { type: "InternalEventSource", number_of_events_to_generate: events, seed, rate_hz: rateHz },
  data_sources: { ...dataSources, timestamp: { type: "SyntheticTimestamp" } },
  processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 16, steps },
  data_serializer: { type: "NativeBinarySerializer" },
  data_handlers: [],
});

export const syntheticCatalog: CatalogEntry[] = [
  {
    name: "synthetic/crystallography",
    description: "Jungfrau 4M frames with Bragg peaks at 120 Hz, pulse energy and timestamps (serial crystallography)",
    config: synthetic(
      "crystallography",
      1,
      10_000,
      120,
      { jungfrau4M: { type: "SyntheticAreaDetector", geometry: "jungfrau4M" }, pulse_energy: { type: "SyntheticScalar", mean: 3.5, sigma: 0.2 } },
      [{ type: "PeakFinder", data_source: "jungfrau4M" }],
    ),
  },
  {
    name: "synthetic/epix",
    description: "ePix10k2M frames (16 panels of 352 x 384) with Bragg peaks",
    config: synthetic("epix", 2, 10_000, 120, { epix10k2M: { type: "SyntheticAreaDetector", geometry: "epix10k2M" } }),
  },
  {
    name: "synthetic/tof",
    description: "four-channel digitizer waveforms with time-of-flight hits, and their CFD hit times",
    config: synthetic("tof", 3, 100_000, 1000, { tof: { type: "SyntheticDigitizer", channels: 4, samples: 4096 } }, [
      { type: "TimeOfFlightHits", data_source: "tof" },
    ]),
  },
];

export const producerConfigSchemaForServer = z.strictObject({
  ...serviceSettingsShape,
  ...policySettingsShape,
  /** Directories HDF5 sources may read. */
  dataRoots: z.array(z.string()).default([]),
  /** More catalog entries (an HDF5 run, a tuned synthetic source). */
  catalog: z.array(z.strictObject({ name: z.string().min(1), description: z.string().default(""), config: z.unknown() })).default([]),
  maxMessageBytes: serverSettingsSchema.shape.maxMessageBytes,
});

export type ProducerServerConfig = z.input<typeof producerConfigSchemaForServer>;

export interface ProducerServer {
  url: string;
  /** The Prometheus endpoint, when a metrics port was given. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

export async function build(input: ProducerServerConfig, deps: ServiceDeps = {}): Promise<ProducerServer> {
  const config = producerConfigSchemaForServer.parse(input);
  const { membership, logger } = await joinAsService("producer", config, deps);
  const catalog = [...syntheticCatalog, ...config.catalog];
  const policy = Policy.fromConfig(config, membership.identity.trustDomain);
  const server = await serveInMesh("producer", config, { membership, logger }, [
    serve(ProducerService, createProducerService({ catalog, dataRoots: config.dataRoots, policy })),
  ]);
  return {
    url: server.url,
    metricsUrl: server.metricsUrl,
    async close() {
      await server.close();
      membership.leave();
    },
  };
}
