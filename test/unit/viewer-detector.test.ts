/** The viewer's detector drawing: panel layouts at known module positions, max-pooling that keeps a lone bright pixel, contrast that ignores hot and dead pixels. */
import { describe, expect, it } from "vitest";
import { fitView, panelLayout, percentileRange, placeOf, pooled, scaled, valueAt } from "../../viewer/src/detector.js";

describe("panel layouts", () => {
  it("places Jungfrau 4M's eight 512 x 1024 modules in two columns of four with gaps", () => {
    const layout = panelLayout([8, 512, 1024]);
    expect(layout.name).toBe("Jungfrau 4M");
    expect(layout.panels.map((p) => [p.x, p.y])).toEqual([
      [0, 0],
      [0, 550],
      [0, 1100],
      [0, 1650],
      [1062, 0],
      [1062, 550],
      [1062, 1100],
      [1062, 1650],
    ]);
    expect([layout.width, layout.height]).toEqual([2086, 2162]);
    // No two modules overlap.
    for (const a of layout.panels)
      for (const b of layout.panels)
        if (a !== b) expect(a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y).toBe(true);
  });

  it("places ePix10k2M's sixteen panels as four quadrants of two by two", () => {
    const layout = panelLayout([16, 352, 384]);
    expect(layout.name).toBe("ePix10k2M");
    expect(layout.panels.slice(0, 5).map((p) => [p.x, p.y])).toEqual([
      [0, 0],
      [404, 0],
      [0, 372],
      [404, 372],
      [828, 0],
    ]);
    expect([layout.width, layout.height]).toEqual([1616, 1488]);
  });

  it("reads a value and its panel, row and column under an assembled pixel, and nothing in a gap", () => {
    const layout = panelLayout([8, 512, 1024]);
    const values = new Uint16Array(8 * 512 * 1024);
    values[5 * 512 * 1024 + 7 * 1024 + 9] = 1234; // module 5, row 7, column 9
    const at = placeOf(layout, 5, 7, 9)!;
    expect(at).toEqual({ x: 1062 + 9, y: 550 + 7 });
    expect(valueAt(layout, values, at.x, at.y)).toEqual({ value: 1234, panel: 5, row: 7, column: 9 });
    expect(valueAt(layout, values, 1030, 10)).toBeUndefined(); // between the columns
  });
});

describe("max-pooling", () => {
  it("keeps a single bright pixel when a 2048 x 2048 frame is shrunk to 512", () => {
    const layout = panelLayout([2048, 2048]);
    const values = new Uint16Array(2048 * 2048).fill(10);
    values[1001 * 2048 + 1503] = 5000;
    const view = fitView(layout, 512, 512);
    const out = pooled(layout, values, view, 512, 512);
    expect(out.reduce((m, v) => Math.max(m, v), 0)).toBe(5000);
    expect(out[Math.floor(1001 / 4) * 512 + Math.floor(1503 / 4)]).toBe(5000);
    expect(out.filter((v) => v === 5000).length).toBe(1);
  });

  it("shows a zoomed window at full resolution, and gaps as NaN", () => {
    const layout = panelLayout([8, 512, 1024]);
    const values = new Float32Array(8 * 512 * 1024).map((_, i) => i % 1024);
    const out = pooled(layout, values, { x0: 1000, y0: 0, pixelsPerScreenPixel: 1 }, 100, 10);
    expect(out[0]).toBe(1000);
    expect(out[23]).toBe(1023);
    expect(Number.isNaN(out[24]!)).toBe(true); // the gap between the columns starts at x = 1024
    expect(out[62]).toBe(0); // module 4 starts at x = 1062
  });
});

describe("contrast", () => {
  it("leaves saturated and masked pixels out of the percentiles", () => {
    const values = new Float32Array(10_000).map((_, i) => i % 100);
    for (let i = 0; i < 500; i++) values[i * 20] = 65535; // hot pixels
    for (let i = 0; i < 500; i++) values[i * 20 + 1] = Number.NaN; // masked
    const [lo, hi] = percentileRange(values, 1, 99, 65535);
    expect(lo).toBeLessThan(3);
    expect(hi).toBeLessThan(100);
    expect(hi).toBeGreaterThan(95);
  });

  it("maps values into [0, 1] on linear, log and asinh scales", () => {
    for (const kind of ["linear", "log", "asinh"] as const) {
      const f = scaled(kind, 10, 1010);
      expect(f(10)).toBe(0);
      expect(f(1010)).toBeCloseTo(1);
      expect(f(5000)).toBe(1);
      expect(f(0)).toBe(0);
      expect(f(100)).toBeGreaterThan(0);
    }
    expect(scaled("log", 10, 1010)(110)).toBeGreaterThan(scaled("linear", 10, 1010)(110));
  });
});
