/** The producer config a data request runs (producerConfigOf): the request's overrides on the user's config. */
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { DataRequestSchema, Serializer } from "../../gen/lclstream/request/v1/request_pb.js";
import { producerConfigOf } from "../../services/request/request-service.js";

const config = {
  batch_size: 4,
  event_source: { type: "synthetic", events: 8 },
  data_sources: { tof: { type: "digitizer", channels: 1, samples: 32 } },
  data_serializer: { type: "hdf5", compression: "gzip", gzip_level: 6 },
};

describe("a request's producer config", () => {
  it("keeps the config's own HDF5 settings when the request asks for HDF5", () => {
    const run = producerConfigOf(create(DataRequestSchema, { producer: config, serializer: Serializer.HDF5, batchSize: 2 }), []);
    expect(run.data_serializer).toMatchObject({ type: "hdf5", compression: "gzip", gzip_level: 6 });
    expect(run.batch_size).toBe(2);
    expect(run.data_handlers).toEqual([{ type: "buffer" }]);
  });

  it("switches the format when the request asks for another one", () => {
    expect(producerConfigOf(create(DataRequestSchema, { producer: config, serializer: Serializer.NATIVE }), []).data_serializer).toEqual({ type: "native" });
    const native = { ...config, data_serializer: { type: "native" } };
    expect(producerConfigOf(create(DataRequestSchema, { producer: native, serializer: Serializer.HDF5 }), []).data_serializer).toMatchObject({ type: "hdf5" });
  });
});
