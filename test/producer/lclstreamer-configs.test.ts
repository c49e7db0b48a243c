/**
 * lclstreamer's own example configs (test/fixtures/lclstreamer/, copied from
 * lclstreamer unchanged) against the producer's schema, and the one that uses
 * no psana run through the pipeline: its events, batches and HDF5 layout.
 */
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Dataset, Group } from "h5wasm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ConfigError, readProducerConfig } from "../../services/producer/config.js";
import { h5 } from "../../services/producer/hdf5.js";
import { checkPipeline, openSource, runPipeline, type ProducedBatch } from "../../services/producer/pipeline.js";
import { internalConfig } from "../helpers/producer-config.js";

const fixtures = new URL("../fixtures/lclstreamer/", import.meta.url);
const read = (name: string) => parseYaml(readFileSync(new URL(name, fixtures), "utf8"));
const configs = readdirSync(fixtures).filter((f) => /\.ya?ml$/.test(f));

/** The ConfigError a call throws, or a failure. */
function problemsOf(fn: () => unknown): ConfigError["problems"] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("accepted");
}

describe("lclstreamer's example configs", () => {
  it("are all here", () => {
    expect(configs).toHaveLength(8);
  });

  for (const file of configs.filter((f) => f !== "lclstreamer-psana1-simplon.yml")) {
    it(`${file} is accepted whole, unchanged, with nothing ignored`, () => {
      const { config, notes } = readProducerConfig(read(file), file);
      expect(notes).toEqual([]);
      expect(config.data_handlers.length).toBe(1);
      if (config.event_source.type === "Psana1EventSource") {
        // The check of what can run here then names the source, in one line.
        expect(problemsOf(() => checkPipeline(config))).toEqual([
          { path: "event_source.type", message: expect.stringMatching(/^Psana1EventSource cannot run here/) },
        ]);
      } else {
        expect(() => checkPipeline(config)).not.toThrow();
      }
    });
  }

  it("refuses the one lclstreamer refuses too (its layout before November 2025), saying how to move it", () => {
    expect(problemsOf(() => readProducerConfig(read("lclstreamer-psana1-simplon.yml")))).toEqual([
      { path: "lclstreamer", message: expect.stringContaining("lclstreamer refuses too: move source_identifier and skip_incomplete_events to the top") },
    ]);
  });

  it("keeps lclstreamer's defaults", () => {
    const { config } = readProducerConfig(read("lclstreamer-psana2-tmo.yaml"));
    expect(config.data_handlers[0]).toEqual({ type: "BinaryFileWritingDataHandler", file_prefix: "", file_suffix: "h5", write_directory: "workspace/output" });
    const { config: mfx } = readProducerConfig(read("lclstreamer-psana2-mfx.yaml"));
    expect(mfx.data_sources.photon_wavelength).toMatchObject({ type: "Psana2DetectorInterface", psana_name: "SIOC:SYS0:ML00:AO192", dtype: "float64" });
    expect(mfx.data_serializer).toEqual({
      type: "HDF5BinarySerializer",
      compression: "zfp",
      compression_level: 3,
      fields: { timestamp: "/timestamp", detector_data: "/data", photon_wavelength: "/wavelength" },
    });
    const internal = readProducerConfig(read("lclstreamer-internal.yaml")).config;
    expect(internal.data_handlers[0]).toEqual({
      type: "BinaryDataStreamingDataHandler",
      urls: ["tcp://127.0.0.1:12321"],
      role: "client",
      library: "zmq",
      socket_type: "push",
    });
  });
});

describe("lclstreamer-internal.yaml through the pipeline", () => {
  let dir: string;
  let batches: ProducedBatch[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-lclstreamer-"));
    const { config } = readProducerConfig(read("lclstreamer-internal.yaml"));
    const source = await openSource(config);
    batches = [];
    for await (const b of runPipeline(config, source, { rank: 0, ranks: 1, signal: new AbortController().signal })) batches.push(b);
    source.close();
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("makes its 76 events in batches of 10 and a last one of 6", () => {
    expect(batches.map((b) => b.events)).toEqual([10, 10, 10, 10, 10, 10, 10, 6]);
    expect(batches.flatMap((b) => b.batch.eventIndices.map(Number))).toEqual(Array.from({ length: 76 }, (_, i) => i));
  });

  it("writes each batch as lclstreamer's HDF5BinarySerializer does: the mapped fields at their paths, chunks of one event, no filter", async () => {
    const lib = await h5();
    const path = join(dir, "batch.h5");
    await writeFile(path, batches[7]!.messages[0]!);
    const file = new lib.File(path, "r");
    try {
      expect(file.keys()).toEqual(["data"]);
      expect((file.get("data") as Group).keys().sort()).toEqual(["float", "int", "random"]);
      const random = file.get("data/random") as Dataset;
      expect([random.shape, random.dtype, random.metadata.chunks, random.filters]).toEqual([[6, 20, 2], "<f", [1, 20, 2], []]);
      const values = random.value as Float32Array;
      expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
      expect(new Set(values).size).toBeGreaterThan(200);
      const int = file.get("data/int") as Dataset;
      expect([int.shape, int.dtype, int.metadata.chunks, Array.from(int.value as BigInt64Array)]).toEqual([[6], "<q", [1], Array(6).fill(3n)]);
      const float = file.get("data/float") as Dataset;
      expect([float.shape, float.dtype, Array.from(float.value as Float64Array)]).toEqual([[6], "<d", Array(6).fill(4.5)]);
      expect(Object.keys(random.attrs)).toEqual([]);
    } finally {
      file.close();
    }
  });
});

describe("a config's errors", () => {
  const problems = (config: unknown) => problemsOf(() => readProducerConfig(config));

  it("say in one line each where, what was given and what is allowed", () => {
    const config = internalConfig(4, { r: { type: "GenericRandomNumpyArray", array_shape: "20,2", array_dtype: "float32" } });
    expect(problems({ ...config, event_source: { type: "InternalSource" } })).toEqual([
      {
        path: "event_source.type",
        message: '"InternalSource" is not a known type; one of InternalEventSource, Psana1EventSource, Psana2EventSource, HDF5EventSource',
      },
    ]);
    expect(problems({ ...config, data_serializer: { type: "HDF5BinarySerializer", compression: "lzf", compression_level: 3 } })).toEqual([
      { path: "data_serializer.compression", message: expect.stringMatching(/"gzip".*"zfp".*; given "lzf"$/) },
    ]);
    expect(problems({ ...config, data_serializer: { type: "HDF5BinarySerializer", compression: "gzip", compression_level: 12 } })).toEqual([
      { path: "data_serializer.compression_level", message: "gzip takes a level from 0 to 9; given 12" },
    ]);
    expect(problems({ ...config, data_handlers: {} })).toEqual([{ path: "data_handlers", message: expect.stringMatching(/expected array.*; given \{\}/) }]);
  });

  it("show the first ten whole and count the rest", () => {
    const many = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`d${i}`, { type: "IntValue", value: "x" }]));
    const error = (() => {
      try {
        readProducerConfig(internalConfig(1, many));
      } catch (e) {
        return e as ConfigError;
      }
    })()!;
    expect(error.problems).toHaveLength(14);
    const lines = error.message.split("\n");
    expect(lines).toHaveLength(12);
    expect(lines.at(-1)).toBe("  ... and 4 more");
  });

  it("note the keys lclstreamer ignores, and ignore them too", () => {
    const config = internalConfig(2, { r: { type: "IntValue", value: 3, calibration: true } });
    expect(readProducerConfig(config).notes).toEqual(["data_sources.r.calibration: not a setting of this type; ignored, as lclstreamer ignores it"]);
  });
});

describe("a config's errors, on values no one should write", () => {
  it("quote objects whose keys shadow Object's methods without failing themselves (found by the fuzz)", () => {
    const config = internalConfig(1, { r: { type: "IntValue", value: { toString: 1, valueOf: 2 } } });
    expect(problemsOf(() => readProducerConfig(config))).toEqual([
      { path: "data_sources.r.value", message: expect.stringContaining('given {"toString":1,"valueOf":2}') },
    ]);
  });
});
