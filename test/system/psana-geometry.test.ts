/**
 * The viewer's reading of psana geometry files against psana's own: for
 * each of psana's default geometry files, every raw pixel's image row and
 * column from the viewer's placePixels() equals what psana's
 * GeometryAccess.get_pixel_coord_indexes() gives (the real psana, from
 * PyPI).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { psanaPython } from "../../services/producer/sources/psana.js";
import { parseGeometry, placePixels } from "../../services/viewer/psana-geometry.js";
import { run } from "../helpers/tools.js";

const fixtures = join(import.meta.dirname, "..", "fixtures", "psana-geometry");

/** psana's image rows and columns of every pixel (written by psana to a file: they are 8 x 4 Mi numbers). */
async function psanaPlacement(file: string): Promise<{ rows: Uint32Array; columns: Uint32Array }> {
  const dir = mkdtempSync(join(tmpdir(), "geometry-"));
  try {
    const script = [
      "import sys, numpy as np",
      "from psana.pscalib.geometry.GeometryAccess import GeometryAccess",
      "rows, cols = GeometryAccess(sys.argv[1]).get_pixel_coord_indexes()",
      "np.concatenate([rows.ravel(), cols.ravel()]).astype('<u4').tofile(sys.argv[2])",
    ].join("\n");
    const out = join(dir, "placement.u4");
    const { code, stderr } = await run(psanaPython(), ["-c", script, file, out], 120_000);
    expect(code, stderr).toBe(0);
    const both = new Uint32Array(new Uint8Array(readFileSync(out)).buffer);
    return { rows: both.subarray(0, both.length / 2), columns: both.subarray(both.length / 2) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("psana geometry files, placed as psana places them", () => {
  for (const [file, segments, rows, columns] of [
    ["geometry-def-jungfrau4M.data", 8, 512, 1024],
    ["geometry-def-epix10kaquad.data", 4, 352, 384],
    ["geometry-def-pnccd.data", 4, 512, 512],
  ] as const) {
    it(`${file}: every pixel in psana's image row and column`, async () => {
      const path = join(fixtures, file);
      const ours = placePixels(parseGeometry(readFileSync(path, "utf8")));
      expect([ours.segments, ours.rows, ours.columns]).toEqual([segments, rows, columns]);
      const theirs = await psanaPlacement(path);
      expect(theirs.rows.length).toBe(segments * rows * columns);
      let differ = 0;
      for (let i = 0; i < theirs.rows.length; i++) {
        if (ours.imageRow[i] !== theirs.rows[i] || ours.imageColumn[i] !== theirs.columns[i]) differ++;
      }
      expect(differ).toBe(0);
      expect(ours.height).toBe(theirs.rows.reduce((a, b) => Math.max(a, b)) + 1);
      expect(ours.width).toBe(theirs.columns.reduce((a, b) => Math.max(a, b)) + 1);
    }, 180_000);
  }
});
