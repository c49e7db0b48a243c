/** The producer config a data request runs (producerConfigOf): the request's overrides on the user's config, and the notes on them. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DataRequestSchema, Serializer } from "../../gen/lclstream/request/v1/request_pb.js";
import { producerConfigOf } from "../../services/request/request-service.js";
import { internalConfig } from "../helpers/producer-config.js";

const config = internalConfig(
  8,
  { tof: { type: "SyntheticDigitizer", channels: 1, samples: 32 } },
  {
    serializer: { type: "HDF5BinarySerializer", compression: "gzip", compression_level: 6 },
    handlers: [
      { type: "BinaryDataStreamingDataHandler", urls: ["tcp://127.0.0.1:12321"], role: "client" },
      { type: "BinaryFileWritingDataHandler", write_directory: "/tmp/out" },
    ],
  },
);

describe("a request's producer config", () => {
  it("keeps the config's own HDF5 settings when the request asks for HDF5, and says which handlers the buffer replaced", () => {
    const { config: run, notes } = producerConfigOf(create(DataRequestSchema, { producer: config, serializer: Serializer.HDF5, batchSize: 2 }), []);
    expect(run.data_serializer).toMatchObject({ type: "HDF5BinarySerializer", compression: "gzip", compression_level: 6 });
    expect(run.processing_pipeline.batch_size).toBe(2);
    expect(run.data_handlers).toEqual([{ type: "BufferStreamingDataHandler" }]);
    expect(notes).toEqual([
      "data_handlers.0: BinaryDataStreamingDataHandler (tcp://127.0.0.1:12321) replaced by the request's buffer stream",
      "data_handlers.1: BinaryFileWritingDataHandler left out: a data request writes no files at the facility (`lclstream get --out DIR` writes them where you are)",
    ]);
  });

  it("switches the format when the request asks for another one", () => {
    const native = producerConfigOf(create(DataRequestSchema, { producer: config, serializer: Serializer.NATIVE }), []).config;
    expect(native.data_serializer).toEqual({ type: "NativeBinarySerializer" });
    const back = producerConfigOf(
      create(DataRequestSchema, { producer: { ...config, data_serializer: { type: "NativeBinarySerializer" } }, serializer: Serializer.HDF5 }),
      [],
    );
    expect(back.config.data_serializer).toEqual({ type: "HDF5BinarySerializer", compression: null, compression_level: 3 });
  });

  it("reads a config of lclstream's first dialect, with a deprecation note", () => {
    const old = { batch_size: 4, event_source: { type: "synthetic", events: 8 }, data_sources: { tof: { type: "digitizer", channels: 1, samples: 32 } } };
    const { config: run, notes } = producerConfigOf(create(DataRequestSchema, { producer: old }), []);
    expect(run.event_source).toMatchObject({ type: "InternalEventSource", number_of_events_to_generate: 8 });
    expect(run.processing_pipeline).toMatchObject({ type: "BatchProcessingPipeline", batch_size: 4 });
    expect(notes[0]).toMatch(/^deprecated: this config is in lclstream's first dialect/);
  });
});
