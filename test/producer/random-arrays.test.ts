/** lclstreamer's GenericRandomNumpyArray: its ranges, events that differ, and the same event again for the same index. */
import { describe, expect, it } from "vitest";
import { parseProducerConfig } from "../../services/producer/config.js";
import { InternalSource } from "../../services/producer/sources/internal.js";
import { internalConfig } from "../helpers/producer-config.js";

const source = (seed: number) =>
  new InternalSource(
    parseProducerConfig(
      internalConfig(
        100,
        {
          f: { type: "GenericRandomNumpyArray", array_shape: "64,64", array_dtype: "float32" },
          u: { type: "GenericRandomNumpyArray", array_shape: "4096", array_dtype: "uint8" },
        },
        { seed },
      ),
    ),
  );

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
    const distinct = new Set(events.map((e) => Buffer.from((e.fields.f!.data as Float32Array).buffer).toString("base64")));
    expect(distinct.size).toBe(20);
    expect(source(7).event(3).fields.f!.data).toEqual(events[3]!.fields.f!.data);
    expect(source(8).event(3).fields.f!.data).not.toEqual(events[3]!.fields.f!.data);
  });
});
