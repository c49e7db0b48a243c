/** lclstreamer's GenericRandomNumpyArray: its ranges, events that differ, and the same event again for the same index. */
import { describe, expect, it } from "vitest";
import { parseProducerConfig } from "../../services/producer/config.js";
import { InternalSource } from "../../services/producer/sources/internal.js";
import { internalConfig } from "../helpers/producer-config.js";

const source = (seed: number, steps: object[] = []) => {
  const config = internalConfig(
    100,
    {
      f: { type: "GenericRandomNumpyArray", array_shape: "64,64", array_dtype: "float32" },
      u: { type: "GenericRandomNumpyArray", array_shape: "4096", array_dtype: "uint8" },
    },
    { seed },
  );
  return new InternalSource(parseProducerConfig({ ...config, processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 1, steps } }));
};

describe("GenericRandomNumpyArray", () => {
  it("draws floats in [0, 1) and integers in [0, 254], different in every event, the same for the same event and seed", () => {
    const a = source(7);
    const events = Array.from({ length: 20 }, (_, i) => a.event(i));
    for (const e of events) {
      const f = e.fields.f!.data as Float32Array;
      const u = e.fields.u!.data as Uint8Array;
      expect(e.fields.f!.shape).toEqual([64, 64]);
      expect(Math.min(...f)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...f)).toBeLessThan(1);
      expect(Math.max(...u)).toBeLessThanOrEqual(254);
      // Spread over the range, not a constant.
      const mean = f.reduce((s, x) => s + x, 0) / f.length;
      expect(mean).toBeGreaterThan(0.45);
      expect(mean).toBeLessThan(0.55);
    }
    const bytes = (d: Float32Array) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("base64");
    expect(new Set(events.map((e) => bytes(e.fields.f!.data as Float32Array))).size).toBe(20);
    expect(source(7).event(3).fields.f!.data).toEqual(events[3]!.fields.f!.data);
    expect(source(8).event(3).fields.f!.data).not.toEqual(events[3]!.fields.f!.data);
  });

  it("gives each event arrays of its own when a processing step may change them in place", () => {
    const a = source(7, [{ type: "Threshold", data_source: "f", value: 2 }]);
    const before = a.event(3).fields.f!.data.slice();
    const first = a.event(3).fields.f!.data as Float32Array;
    first.fill(0); // as Threshold does
    expect(a.event(3).fields.f!.data).toEqual(before);
    expect(Math.max(...(before as Float32Array))).toBeGreaterThan(0);
  });
});
