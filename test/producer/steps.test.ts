/** Image processing steps on known arrays, and the file handler's names. */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createPeaknetStep, createStep } from "../../services/producer/processing.js";
import { createFileHandler } from "../../services/producer/handlers.js";
import type { DetectorEvent } from "../../services/producer/event.js";
import type { ProducedBatch } from "../../services/producer/pipeline.js";

/** An event with one 4 x 4 uint16 image holding 0..15. */
const event = (): DetectorEvent => ({
  index: 0,
  timeNs: 0n,
  fields: { img: { dtype: "uint16", shape: [4, 4], data: Uint16Array.from({ length: 16 }, (_, i) => i) } },
});
const apply = (config: Parameters<typeof createStep>[0]) => {
  const e = event();
  createStep(config).apply(e);
  return e.fields.img!;
};

describe("processing steps", () => {
  it("crops a region of interest", () => {
    const out = apply({ type: "RegionOfInterest", data_source: "img", y0: 1, y1: 3, x0: 2, x1: 4 });
    expect(out.shape).toEqual([2, 2]);
    expect(Array.from(out.data as Float32Array)).toEqual([6, 7, 10, 11]);
  });

  it("bins by summing blocks", () => {
    const out = apply({ type: "Binning", data_source: "img", factor: 2 });
    expect(out.shape).toEqual([2, 2]);
    expect(Array.from(out.data as Float32Array)).toEqual([0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15]);
  });

  it("zeroes values under a threshold, keeping the dtype", () => {
    const out = apply({ type: "Threshold", data_source: "img", value: 10 });
    expect(out.dtype).toBe("uint16");
    expect(Array.from(out.data as Uint16Array)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 11, 12, 13, 14, 15]);
  });

  it("pads and crops to PeakNet's input, centred or from the top left, with a channel dimension", () => {
    const centred = apply({ type: "PadCrop", data_source: "img", height: 6, width: 2, anchor: "center", channel_dim: true });
    expect(centred.shape).toEqual([1, 6, 2]);
    expect(Array.from(centred.data as Float32Array)).toEqual([0, 0, 1, 2, 5, 6, 9, 10, 13, 14, 0, 0]);
    const corner = apply({ type: "PadCrop", data_source: "img", height: 2, width: 5, anchor: "bottom-right", channel_dim: false });
    expect(corner.shape).toEqual([2, 5]);
    expect(Array.from(corner.data as Float32Array)).toEqual([0, 1, 2, 3, 0, 4, 5, 6, 7, 0]);
  });

  it("refuses a region outside the image", () => {
    expect(() =>
      createStep({ type: "RegionOfInterest", data_source: "img", y0: 0, y1: 9, x0: 0, x1: 2 }).fields([
        { name: "img", dtype: "uint16", shape: [4, 4], description: "" },
      ]),
    ).toThrow(/not inside "img" \(4 x 4\)/);
  });
});

describe("PeaknetPreprocessingPipeline's padding", () => {
  const peaknet = (pad_style: "center" | "bottom-right", num_channels: number, add_channel_dim = true) =>
    createPeaknetStep({
      type: "PeaknetPreprocessingPipeline",
      batch_size: 1,
      target_height: 7,
      target_width: 5,
      pad_style,
      add_channel_dim,
      num_channels,
      steps: [],
    });

  it("zero-pads every 2-D field to the target, the odd pixel bottom and right, keeping its dtype, into C x H x W", () => {
    const e = event();
    e.fields.energy = { dtype: "float64", shape: [], data: new Float64Array([3.5]) };
    peaknet("center", 2).apply(e);
    const out = e.fields.img!;
    expect(out.dtype).toBe("uint16");
    expect(out.shape).toEqual([2, 7, 5]);
    const plane = Array.from(out.data as Uint16Array).slice(0, 35);
    // (7 - 4) = 3 rows: 1 above, 2 below; (5 - 4) = 1 column: on the right.
    expect(plane).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 7, 0, 8, 9, 10, 11, 0, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(out.data as Uint16Array).slice(35)).toEqual(plane);
    expect(e.fields.energy!.shape).toEqual([]);
  });

  it("pads bottom-right only, and never crops a larger image", () => {
    const e = event();
    peaknet("bottom-right", 1, false).apply(e);
    expect(e.fields.img!.shape).toEqual([7, 5]);
    expect(Array.from(e.fields.img!.data as Uint16Array).slice(0, 5)).toEqual([0, 1, 2, 3, 0]);
    const big = { name: "img", dtype: "uint16" as const, shape: [9, 3], description: "" };
    expect(peaknet("center", 1).fields([big])[0]!.shape).toEqual([1, 9, 5]);
  });
});

describe("file handler", () => {
  it("names files as lclstreamer does: {write_directory}/{file_prefix}_r{rank}_{counter}.{file_suffix}", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-files-"));
    try {
      const batch = { messages: [new Uint8Array([1, 2, 3])] } as ProducedBatch;
      const write = async (file_prefix: string, directory: string) => {
        const handler = createFileHandler({ type: "BinaryFileWritingDataHandler", file_prefix, file_suffix: "h5", write_directory: join(dir, directory) }, 3);
        await handler.handle(batch);
        await handler.handle(batch);
        return (await readdir(join(dir, directory))).sort();
      };
      expect(await write("run7", "a/b")).toEqual(["run7_r3_0.h5", "run7_r3_1.h5"]);
      expect(await write("", "plain")).toEqual(["r3_0.h5", "r3_1.h5"]);
      expect(await write("x_", "underscore")).toEqual(["x_r3_0.h5", "x_r3_1.h5"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
