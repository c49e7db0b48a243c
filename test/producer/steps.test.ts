/** Image processing steps on known arrays, and the file handler's names. */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createStep } from "../../services/producer/processing.js";
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
    const out = apply({ step: "roi", field: "img", y0: 1, y1: 3, x0: 2, x1: 4 });
    expect(out.shape).toEqual([2, 2]);
    expect(Array.from(out.data as Float32Array)).toEqual([6, 7, 10, 11]);
  });

  it("bins by summing blocks", () => {
    const out = apply({ step: "bin", field: "img", factor: 2 });
    expect(out.shape).toEqual([2, 2]);
    expect(Array.from(out.data as Float32Array)).toEqual([0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15]);
  });

  it("zeroes values under a threshold, keeping the dtype", () => {
    const out = apply({ step: "threshold", field: "img", value: 10 });
    expect(out.dtype).toBe("uint16");
    expect(Array.from(out.data as Uint16Array)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 11, 12, 13, 14, 15]);
  });

  it("pads and crops to PeakNet's input, centred or from the top left, with a channel dimension", () => {
    const centred = apply({ step: "pad_crop", field: "img", height: 6, width: 2, anchor: "center", channel_dim: true });
    expect(centred.shape).toEqual([1, 6, 2]);
    expect(Array.from(centred.data as Float32Array)).toEqual([0, 0, 1, 2, 5, 6, 9, 10, 13, 14, 0, 0]);
    const corner = apply({ step: "pad_crop", field: "img", height: 2, width: 5, anchor: "bottom_right", channel_dim: false });
    expect(corner.shape).toEqual([2, 5]);
    expect(Array.from(corner.data as Float32Array)).toEqual([0, 1, 2, 3, 0, 4, 5, 6, 7, 0]);
  });

  it("refuses a region outside the image", () => {
    expect(() =>
      createStep({ step: "roi", field: "img", y0: 0, y1: 9, x0: 0, x1: 2 }).fields([{ name: "img", dtype: "uint16", shape: [4, 4], description: "" }]),
    ).toThrow(/not inside "img" \(4 x 4\)/);
  });
});

describe("file handler", () => {
  it("names files {prefix}_r{rank}_{counter}.{suffix}", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-files-"));
    try {
      const handler = createFileHandler(join(dir, "out", "run7"), 3);
      const batch = { fileBytes: new Uint8Array([1, 2, 3]), fileSuffix: "h5" } as ProducedBatch;
      await handler.handle(batch);
      await handler.handle(batch);
      expect((await readdir(join(dir, "out"))).sort()).toEqual(["run7_r3_0.h5", "run7_r3_1.h5"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
