/** The viewer's run panels' arithmetic: hit rate by time bin, peaks placed on the detector, powder, peakogram and histograms. */
import { describe, expect, it } from "vitest";
import { HitRate, Histogram, Peakogram, peaksOf, Powder } from "../../viewer/src/accumulate.js";
import { panelLayout } from "../../viewer/src/detector.js";

describe("the run panels' arithmetic", () => {
  it("counts hits among events per time bin", () => {
    const rate = new HitRate(2);
    rate.add({ values: [1, 0, 1, 1], events: 4, per: 1 }, 100.5);
    rate.add({ values: [0, 0], events: 2, per: 1 }, 101.9);
    rate.add({ values: [1], events: 1, per: 1 }, 102.1);
    expect(rate.series(0)).toEqual([
      [100, 102],
      [50, 100],
    ]);
    expect(rate.series(101)).toEqual([[102], [100]]);
  });

  it("places each event's peaks on the assembled detector, skipping unused rows", () => {
    const layout = panelLayout([8, 512, 1024]);
    // Two events of two peak rows each (row, column, intensity); stacked rows: module 1 starts at row 512.
    const peaks = { values: [10, 20, 500, Number.NaN, Number.NaN, Number.NaN, 512 + 5, 7, 900, 3 * 512 + 1, 2, 30], events: 2, per: 6 };
    expect([...peaksOf(peaks, layout, 512, true)]).toEqual([
      { x: 20, y: 10, intensity: 500 },
      { x: 7, y: 550 + 5, intensity: 900 },
      { x: 2, y: 3 * 550 + 1, intensity: 30 },
    ]);
  });

  it("accumulates a powder pattern on a coarser grid and a peakogram by radius and intensity", () => {
    const layout = panelLayout([1024, 1024]);
    const powder = new Powder(layout);
    expect([powder.shrink, powder.width, powder.height]).toEqual([2, 512, 512]);
    powder.add({ x: 11, y: 21 });
    powder.add({ x: 10, y: 20 });
    expect(powder.counts[10 * 512 + 5]).toBe(2);
    const gram = new Peakogram(layout, 4, 6, [0, 6]);
    gram.add({ x: 512, y: 512, intensity: 1e5 }); // the centre, log10 5: intensity bin 5 of 6, the top row
    gram.add({ x: 0, y: 0, intensity: 10 }); // the corner, log10 1: bin 1
    gram.add({ x: 0, y: 0, intensity: 0 }); // no intensity: not counted
    expect(gram.counts[0 * 4 + 0]).toBe(1);
    expect(gram.counts[4 * 4 + 3]).toBe(1);
    expect(gram.counts.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it("histograms values inside its range only", () => {
    const h = new Histogram(100, 4);
    for (const v of [0, 24.9, 25, 99.9, 100, -1, Number.NaN]) h.add(v);
    expect(h.series()).toEqual([
      [0, 25, 50, 75],
      [2, 1, 0, 1],
    ]);
  });
});
