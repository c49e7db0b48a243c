/** The producer server: ProducerService over mTLS, with a catalog of sources. */
import { z } from "zod";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { serve, serverSettingsSchema } from "../common/server.js";
import { Policy } from "../common/policy.js";
import { joinAsService, policySettingsShape, serviceSettingsShape, serveInMesh, type ServiceDeps } from "../common/service-config.js";
import { createProducerService, type CatalogEntry } from "./producer-service.js";

/** The sources every producer offers: the synthetic facility, ready to stream. */
export const syntheticCatalog: CatalogEntry[] = [
  {
    name: "synthetic/crystallography",
    description: "Jungfrau 4M frames with Bragg peaks at 120 Hz, pulse energy and timestamps (serial crystallography)",
    config: {
      source_identifier: "synthetic:crystallography:run=1",
      event_source: { type: "synthetic", seed: 1, events: 10_000, rate_hz: 120 },
      data_sources: {
        jungfrau4M: { type: "area_detector", geometry: "jungfrau4M" },
        pulse_energy: { type: "scalar", mean: 3.5, sigma: 0.2 },
        timestamp: { type: "timestamp" },
      },
      processing_pipeline: [{ step: "peak_finder", field: "jungfrau4M" }],
    },
  },
  {
    name: "synthetic/epix",
    description: "ePix10k2M frames (16 panels of 352 x 384) with Bragg peaks",
    config: {
      source_identifier: "synthetic:epix:run=1",
      event_source: { type: "synthetic", seed: 2, events: 10_000, rate_hz: 120 },
      data_sources: { epix10k2M: { type: "area_detector", geometry: "epix10k2M" }, timestamp: { type: "timestamp" } },
    },
  },
  {
    name: "synthetic/tof",
    description: "four-channel digitizer waveforms with time-of-flight hits, and their CFD hit times",
    config: {
      source_identifier: "synthetic:tof:run=1",
      event_source: { type: "synthetic", seed: 3, events: 100_000, rate_hz: 1000 },
      data_sources: { tof: { type: "digitizer", channels: 4, samples: 4096 }, timestamp: { type: "timestamp" } },
      processing_pipeline: [{ step: "tof_hits", field: "tof" }],
    },
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
    async close() {
      await server.close();
      membership.leave();
    },
  };
}
