/**
 * psana geometry files in the viewer: parsing (with errors that name the
 * line), pixel places at known module corners of psana's Jungfrau 4M
 * default geometry (the values psana's GeometryAccess gives; the system
 * test compares every pixel), and drawing through them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseGeometry, placePixels } from "../../services/viewer/psana-geometry.js";
import { fitView, panelLayout, placeOf, pooled, useGeometry, valueAt } from "../../viewer/src/detector.js";

const jungfrau4M = readFileSync(join(import.meta.dirname, "..", "fixtures", "psana-geometry", "geometry-def-jungfrau4M.data"), "utf8");

describe("psana geometry files", () => {
  it("reads objects with design angle plus tilt, skipping comments", () => {
    const objects = parseGeometry(jungfrau4M);
    expect(objects).toHaveLength(9);
    expect(objects[0]).toMatchObject({ parent: "JFCAMERA:V1", name: "JUNGFRAU:V2", index: 0, x0: -56807.1, y0: 44005.5, rotZ: 90, rotY: 180 });
    expect(parseGeometry("P 0 MTRX:V2:4:4:100:100 0  0 0 0  10 0 0  0.5 0 0")[0]!.rotZ).toBe(10.5);
  });

  it("says which line is wrong, and which segment types it knows", () => {
    expect(() => parseGeometry("# comment\nIP 0 CAM 0 1 2 3")).toThrow(/line 2: expected PARENT IND OBJECT IND/);
    expect(() => parseGeometry("# only comments")).toThrow(/no objects/);
    expect(() => placePixels(parseGeometry("IP 0 CSPAD:V9 0 0 0 0 0 0 0 0 0 0"))).toThrow(/CSPAD:V9 is not supported here \(known: JUNGFRAU:V2/);
  });

  it("puts Jungfrau 4M's module corners where psana puts them", () => {
    const g = placePixels(parseGeometry(jungfrau4M));
    expect([g.segments, g.rows, g.columns, g.height, g.width]).toEqual([8, 512, 1024, 2203, 2299]);
    const at = (segment: number, row: number, column: number) => {
      const i = (segment * 512 + row) * 1024 + column;
      return [g.imageRow[i], g.imageColumn[i]];
    };
    expect(at(0, 0, 0)).toEqual([1029, 135]);
    expect(at(0, 0, 1023)).toEqual([0, 135]);
    expect(at(0, 511, 0)).toEqual([1029, 648]);
    expect(at(3, 0, 1023)).toEqual([134, 1785]);
    expect(at(7, 511, 0)).toEqual([2202, 2163]);
  });

  it("draws frames of its shape in it: values under the cursor, peaks' places, a lone pixel kept when shrunk", () => {
    const layout = useGeometry("jungfrau4M.data", placePixels(parseGeometry(jungfrau4M)));
    expect(panelLayout([8, 512, 1024])).toBe(layout);
    expect(panelLayout([16, 352, 384]).name).toBe("ePix10k2M"); // other shapes keep their layouts
    const frame = new Float32Array(8 * 512 * 1024);
    const raw = (3 * 512 + 100) * 1024 + 200;
    frame[raw] = 1000;
    const place = placeOf(layout, 3, 100, 200)!;
    expect(valueAt(layout, frame, place.x + 0.5, place.y + 0.5)).toEqual({ value: 1000, panel: 3, row: 100, column: 200 });
    expect(valueAt(layout, frame, 2298, 0)).toBeUndefined(); // a corner no module covers
    const shown = pooled(layout, frame, fitView(layout, 256, 256), 256, 256);
    expect(Math.max(...shown.filter((v) => !Number.isNaN(v)))).toBe(1000);
    expect(shown.filter((v) => Number.isNaN(v)).length).toBeGreaterThan(0); // the gaps
    const zoomed = pooled(layout, frame, { x0: place.x - 2, y0: place.y - 2, pixelsPerScreenPixel: 0.5 }, 16, 16);
    expect(zoomed[4 * 16 + 4]).toBe(1000); // two screen pixels an image pixel
    expect(zoomed.filter((v) => v === 1000)).toHaveLength(4);
  });
});
