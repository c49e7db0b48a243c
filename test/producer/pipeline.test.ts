/** The producer pipeline on its own: determinism, ranks, finders against ground truth, HDF5 both ways, bad configs. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseProducerConfig } from "../../services/producer/config.js";
import { h5 } from "../../services/producer/hdf5.js";
import { writeCorruptHdf5 } from "../helpers/hdf5.js";
import { hdf5Config, internalConfig } from "../helpers/producer-config.js";
import { dtypeFromProto, typedView } from "../../services/producer/ndarray.js";
import { openSource, runPipeline, type ProducedBatch } from "../../services/producer/pipeline.js";
import type { EventBatch } from "../../gen/lclstream/data/v1/data_pb.js";
import type { EventSource } from "../../services/producer/event.js";
import type { NdArray } from "../../services/producer/ndarray.js";

const never = new AbortController().signal;

async function collect(config: unknown, rank = 0, ranks = 1, extra: { startEvent?: number; maxEvents?: number } = {}) {
  const parsed = parseProducerConfig(config);
  const source = await openSource(parsed);
  const out: ProducedBatch[] = [];
  try {
    for await (const b of runPipeline(parsed, source, { rank, ranks, signal: never, ...extra })) out.push(b);
  } finally {
    source.close();
  }
  return out;
}

/** A field of a native batch as a typed array, with its shape. */
function column(batch: EventBatch, name: string) {
  if (batch.payload.case !== "columns") throw new Error("not a native batch");
  const a = batch.payload.value.fields[name]!;
  return { shape: a.shape.map(Number), data: typedView(dtypeFromProto[a.dtype], a.data) };
}

const indices = (batches: ProducedBatch[]) => batches.flatMap((b) => b.batch.eventIndices.map(Number));

const detectors = {
  det: { type: "SyntheticAreaDetector", geometry: "small", truth: true },
  energy: { type: "SyntheticScalar" },
  ts: { type: "SyntheticTimestamp" },
};
const synthetic = (events: number, parts: Parameters<typeof internalConfig>[2] = {}) => internalConfig(events, detectors, { seed: 11, ...parts });

describe("producer pipeline", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-producer-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("is deterministic for a seed, and an event is the same whichever rank makes it", async () => {
    const once = await collect(synthetic(12));
    const again = await collect(synthetic(12));
    expect(once.map((b) => Buffer.from(b.bytes.contiguous()))).toEqual(again.map((b) => Buffer.from(b.bytes.contiguous())));
    const other = await collect(synthetic(12, { seed: 12 }));
    expect(Buffer.from(other[0]!.bytes.contiguous())).not.toEqual(Buffer.from(once[0]!.bytes.contiguous()));

    const byIndex = new Map<number, number[]>();
    for (const b of once) {
      const det = column(b.batch, "det");
      b.batch.eventIndices.forEach((idx, i) => byIndex.set(Number(idx), Array.from(det.data.subarray(i * 65536, i * 65536 + 64) as Uint16Array)));
    }
    const rank2 = await collect(synthetic(12), 2, 3);
    const det = column(rank2[0]!.batch, "det");
    expect(Array.from(det.data.subarray(0, 64) as Uint16Array)).toEqual(byIndex.get(Number(rank2[0]!.batch.eventIndices[0])));
  });

  it("splits the events among ranks: three ranks together make each event exactly once", async () => {
    const all = (await Promise.all([0, 1, 2].map((r) => collect(synthetic(50), r, 3)))).flatMap(indices);
    expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("stacks fields with a leading batch dimension and a partial last batch", async () => {
    const batches = await collect(synthetic(10));
    expect(batches.map((b) => b.events)).toEqual([4, 4, 2]);
    expect(column(batches[0]!.batch, "det").shape).toEqual([4, 256, 256]);
    expect(column(batches[2]!.batch, "energy").shape).toEqual([2]);
    expect(batches.map((b) => Number(b.batch.seq))).toEqual([0, 1, 2]);
  });

  it("finds the injected Bragg peaks: positions within a pixel, recall and precision above 0.9", async () => {
    const config = internalConfig(
      8,
      {
        det: {
          type: "SyntheticAreaDetector",
          geometry: { shape: [512, 512], dtype: "uint16" },
          truth: true,
          peaks: { min: 10, max: 30, intensity: 3000, sigma: 1.2 },
        },
      },
      { seed: 5, batchSize: 1, steps: [{ type: "PeakFinder", data_source: "det" }] },
    );
    let truePositives = 0;
    let found = 0;
    let injected = 0;
    for (const b of await collect(config)) {
      const truth = column(b.batch, "det_peaks_truth").data as Float32Array;
      const peaks = column(b.batch, "det_peaks").data as Float32Array;
      const n = (column(b.batch, "det_npeaks").data as Int32Array)[0]!;
      const injectedHere: [number, number][] = [];
      for (let i = 0; i < truth.length / 3; i++) if (!Number.isNaN(truth[i * 3]!)) injectedHere.push([truth[i * 3]!, truth[i * 3 + 1]!]);
      injected += injectedHere.length;
      found += n;
      for (let i = 0; i < n; i++) {
        const [y, x] = [peaks[i * 3]!, peaks[i * 3 + 1]!];
        if (injectedHere.some(([ty, tx]) => Math.hypot(ty - y, tx - x) < 1)) truePositives++;
      }
      expect((column(b.batch, "det_hit").data as Uint8Array)[0]).toBe(n >= 10 ? 1 : 0);
    }
    expect(truePositives / injected).toBeGreaterThan(0.9);
    expect(truePositives / found).toBeGreaterThan(0.9);
  });

  it("finds the injected time-of-flight hits within half a sample", async () => {
    const config = internalConfig(
      10,
      { tof: { type: "SyntheticDigitizer", channels: 2, samples: 2048, truth: true } },
      { seed: 9, batchSize: 5, steps: [{ type: "TimeOfFlightHits", data_source: "tof" }] },
    );
    let matched = 0;
    let injected = 0;
    let found = 0;
    for (const b of await collect(config)) {
      const truth = column(b.batch, "tof_hits_truth").data as Float32Array;
      const hits = column(b.batch, "tof_hits").data as Float32Array;
      const counts = column(b.batch, "tof_nhits").data as Int32Array;
      const max = 12;
      for (let row = 0; row < counts.length; row++) {
        const t = Array.from(truth.subarray(row * max, (row + 1) * max)).filter((v) => !Number.isNaN(v));
        const h = Array.from(hits.subarray(row * 64, row * 64 + counts[row]!));
        injected += t.length;
        found += h.length;
        matched += h.filter((v) => t.some((u) => Math.abs(u - v) < 0.5)).length;
      }
    }
    expect(matched / injected).toBeGreaterThan(0.9);
    expect(matched / found).toBeGreaterThan(0.9);
  });

  it("writes HDF5 batches that read back identical, in memory (no temporary file)", async () => {
    // A temporary directory that does not exist: any temporary file would fail the write.
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = join(dir, "no-such-directory");
    let batch;
    try {
      [batch] = await collect(synthetic(3, { serializer: { type: "HDF5BinarySerializer", compression: "gzip" } }));
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
    const native = (await collect(synthetic(3)))[0]!;
    expect(batch!.batch.payload.case).toBe("serialized");
    const lib = await h5();
    const path = join(dir, "batch.h5");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(path, batch!.messages[0]!);
    const file = new lib.File(path, "r");
    try {
      const det = file.get("data/det") as import("h5wasm").Dataset;
      expect(det.shape).toEqual([3, 256, 256]);
      expect(Buffer.from((det.value as Uint16Array).buffer)).toEqual(
        Buffer.from(column(native.batch, "det").data.buffer, column(native.batch, "det").data.byteOffset, 3 * 65536 * 2),
      );
      // lclstreamer's layout: the fields, chunks of one event, nothing else.
      expect(det.metadata.chunks).toEqual([1, 256, 256]);
      expect(det.filters.map((f) => f.id)).toEqual([1]);
      expect(file.keys()).toEqual(["data"]);
      expect((file.get("data") as import("h5wasm").Group).keys().sort()).toEqual(["det", "det_peaks_truth", "energy", "ts"]);
    } finally {
      file.close();
    }
  });

  it("reads events from several HDF5 files, shuffled, each exactly once, and resumes from a position", async () => {
    const lib = await h5();
    const files = [5, 7, 3].map((n, f) => {
      const path = join(dir, `run-${f}.h5`);
      const file = new lib.File(path, "w");
      file.create_group("entry");
      const offset = [0, 5, 12][f]!;
      file.create_dataset({ name: "entry/x", data: Float32Array.from({ length: n * 2 }, (_, i) => offset + Math.floor(i / 2)), shape: [n, 2], dtype: "<f" });
      file.close();
      return path;
    });
    const config = (start = 0) =>
      hdf5Config(files, { x: { type: "HDF5Dataset", path: "/entry/x" } }, { batchSize: 2, shuffle: true, seed: 4, startEvent: start });
    const two = [...(await collect(config(), 0, 2)), ...(await collect(config(), 1, 2))];
    const seen = two.flatMap((b) => Array.from(column(b.batch, "x").data as Float32Array).filter((_, i) => i % 2 === 0));
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(indices(two).sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i));

    const order = indices(await collect(config()));
    expect(order).not.toEqual([...order].sort((a, b) => a - b));
    const first = indices(await collect(config(), 0, 1, { maxEvents: 6 }));
    const rest = indices(await collect(config(6)));
    expect([...first, ...rest]).toEqual(order);
  });

  it("fails on the first event whose chunk cannot be read, after streaming the ones before it", async () => {
    const path = join(dir, "corrupt.h5");
    await writeCorruptHdf5(path);
    const parsed = parseProducerConfig(hdf5Config([path], { x: { type: "HDF5Dataset", path: "/x" } }, { batchSize: 1 }));
    const source = await openSource(parsed);
    const rows: number[] = [];
    try {
      const error = await (async () => {
        for await (const b of runPipeline(parsed, source, { rank: 0, ranks: 1, signal: never })) rows.push((column(b.batch, "x").data as Float32Array)[0]!);
      })().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(/^reading events \d+\.\.\d+ of \/x in .*corrupt\.h5 failed: the file is corrupt or truncated there$/);
    } finally {
      source.close();
    }
    // What came before the damage is what the file holds, row by row.
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.map(Math.round)).toEqual(rows.map((_, i) => i));
  });

  it("refuses bad configs, naming the problem and the path", async () => {
    const problem = async (config: unknown) => {
      try {
        await collect(config);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("accepted");
    };
    expect(await problem({ ...synthetic(2), colour: "blue" })).toContain("(top): unknown key colour");
    expect(await problem(internalConfig(2, { r: { type: "GenericRandomNumpyArray", array_shape: "2", array_dtype: "float16" } }))).toMatch(
      /data_sources\.r\.array_dtype: .*float32.*; given "float16"/,
    );
    expect(await problem(synthetic(2, { steps: [{ type: "PeakFinder", data_source: "nope" }] }))).toContain('no field "nope"');
    const x = { x: { type: "HDF5Dataset", path: "/x" } };
    expect(await problem(hdf5Config([join(dir, "missing.h5")], x))).toContain(`event_source.files.0: no such file: ${join(dir, "missing.h5")}`);
    const lib = await h5();
    const a = join(dir, "a.h5");
    const b = join(dir, "b.h5");
    for (const [path, width] of [
      [a, 2],
      [b, 3],
    ] as const) {
      const f = new lib.File(path, "w");
      f.create_dataset({ name: "x", data: new Float32Array(4 * width), shape: [4, width], dtype: "<f" });
      f.close();
    }
    expect(await problem(hdf5Config([a], { x: { type: "HDF5Dataset", path: "/y" } }))).toContain(`data_sources.x.path: ${a} has no dataset /y`);
    expect(await problem(hdf5Config([a, b], x))).toContain("shape mismatch across events");
  });
});

describe("skip_incomplete_events", () => {
  it("leaves out events a source gave incomplete, and counts them", async () => {
    const config = parseProducerConfig(
      internalConfig(6, { a: { type: "FloatValue", value: 1 }, b: { type: "FloatValue", value: 2 } }, { batchSize: 2, skipIncomplete: true }),
    );
    // A source whose field b is missing (psana's None) in events 1 and 4.
    const source: EventSource = {
      eventCount: 6,
      fields: () => ["a", "b"].map((name) => ({ name, dtype: "float64" as const, shape: [], description: "" })),
      async *events() {
        for (let index = 0; index < 6; index++) {
          const fields: Record<string, NdArray> = { a: { dtype: "float64", shape: [], data: Float64Array.of(index) } };
          if (index !== 1 && index !== 4) fields.b = { dtype: "float64", shape: [], data: Float64Array.of(index) };
          yield { index, timeNs: 0n, fields };
        }
      },
      close() {},
    };
    const run = runPipeline(config, source, { rank: 0, ranks: 1, signal: never });
    const batches: ProducedBatch[] = [];
    let next = await run.next();
    for (; !next.done; next = await run.next()) batches.push(next.value);
    expect(indices(batches)).toEqual([0, 2, 3, 5]);
    expect(batches.map((b) => b.skipped)).toEqual([1, 2]);
    expect(next.value.skipped).toBe(2);
  });
});
