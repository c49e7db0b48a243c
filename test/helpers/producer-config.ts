/** Producer configs for tests, in lclstreamer's layout, with the parts a test does not care about filled in. */
import type { JsonObject } from "@bufbuild/protobuf";

export interface ConfigParts {
  batchSize?: number;
  steps?: JsonObject[];
  serializer?: JsonObject;
  handlers?: JsonObject[];
  skipIncomplete?: boolean;
}

const rest = (p: ConfigParts): JsonObject => ({
  processing_pipeline: { type: "BatchProcessingPipeline", batch_size: p.batchSize ?? 4, steps: p.steps ?? [] },
  data_serializer: p.serializer ?? { type: "NativeBinarySerializer" },
  data_handlers: p.handlers ?? [],
});

/** InternalEventSource making `events` events of `dataSources`. */
export function internalConfig(
  events: number,
  dataSources: JsonObject,
  parts: ConfigParts & { seed?: number; rateHz?: number; paced?: boolean } = {},
): JsonObject {
  return {
    source_identifier: "test:run=1",
    skip_incomplete_events: parts.skipIncomplete ?? false,
    event_source: {
      type: "InternalEventSource",
      number_of_events_to_generate: events,
      seed: parts.seed ?? 1,
      ...(parts.rateHz === undefined ? {} : { rate_hz: parts.rateHz }),
      ...(parts.paced === undefined ? {} : { paced: parts.paced }),
    },
    data_sources: dataSources,
    ...rest(parts),
  };
}

/** HDF5EventSource reading `files`. */
export function hdf5Config(
  files: string[],
  dataSources: JsonObject,
  parts: ConfigParts & { shuffle?: boolean; seed?: number; startEvent?: number } = {},
): JsonObject {
  return {
    source_identifier: "test:hdf5",
    skip_incomplete_events: false,
    event_source: { type: "HDF5EventSource", files, shuffle: parts.shuffle ?? false, seed: parts.seed ?? 1, start_event: parts.startEvent ?? 0 },
    data_sources: dataSources,
    ...rest(parts),
  };
}

/**
 * Psana2EventSource reading the jungfrau's raw frames (uint16) of XTC2 `file`,
 * a batch of one each, natively serialized: a batch sends the frame's own memory.
 */
export function psanaFramesConfig(file: string): JsonObject {
  return {
    source_identifier: `files=${file}`,
    skip_incomplete_events: false,
    event_source: { type: "Psana2EventSource" },
    data_sources: { frames: { type: "Psana2DetectorInterface", psana_name: "jungfrau", psana_fields: "raw.raw", dtype: "uint16" } },
    ...rest({ batchSize: 1 }),
  };
}
