/**
 * A detector frame as a scientist reads it: panels placed where they sit on
 * the detector (with their gaps), shrunk to the screen by max-pooling (a
 * single bright pixel survives), a window of it at full resolution when
 * zoomed, contrast from percentiles that leave out masked and saturated
 * pixels, and linear, log and asinh scales. Pure functions of arrays, so
 * they are tested without a browser.
 */
import type { PixelPlacement } from "../../services/viewer/psana-geometry.js";

/** Where one panel of a frame lands in the assembled image, in pixels. */
export interface PanelPlace {
  /** The panel's index in the frame's leading axis (0 for a 2-D frame). */
  panel: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** An assembled detector: its size and its panels' places, or, from a psana geometry file, every pixel's place (and no panel places). */
export interface Layout {
  name: string;
  width: number;
  height: number;
  panels: PanelPlace[];
  pixels?: PixelMap;
}

/** How many panels (segments) a layout's frames have. */
export const panelCount = (layout: Layout) => layout.pixels?.segments ?? layout.panels.length;

/** Every raw pixel's place in the image, and the raw pixel at each image pixel (-1 where none is). */
export interface PixelMap {
  imageRow: Uint32Array;
  imageColumn: Uint32Array;
  /** Panels (segments), each of rows x columns raw pixels. */
  segments: number;
  rows: number;
  columns: number;
  rawAt: Int32Array;
}

const geometries: Layout[] = [];

/**
 * Uses a psana geometry (see psana-geometry.ts) for frames of its shape
 * (segments x rows x columns) from now on, instead of the built-in layouts.
 */
export function useGeometry(name: string, g: PixelPlacement): Layout {
  const rawAt = new Int32Array(g.width * g.height).fill(-1);
  for (let i = 0; i < g.imageRow.length; i++) rawAt[g.imageRow[i]! * g.width + g.imageColumn[i]!] = i;
  const layout: Layout = {
    name,
    width: g.width,
    height: g.height,
    panels: [],
    pixels: { imageRow: g.imageRow, imageColumn: g.imageColumn, segments: g.segments, rows: g.rows, columns: g.columns, rawAt },
  };
  geometries.push(layout);
  return layout;
}

/**
 * The layout of a frame of `shape` (panels x rows x columns, or rows x
 * columns). Known detectors by their raw shapes: Jungfrau 4M (8 modules of
 * 512 x 1024, two columns of four, 38 px gaps between modules), ePix10k2M
 * (16 panels of 352 x 384, four quadrants of two by two, 20 px gaps inside
 * a quadrant, 40 px between quadrants). These are approximations of the
 * instruments' arrangement: a psana geometry given to useGeometry() for
 * the shape wins. Any other stack of panels goes on a near-square grid with
 * 8 px gaps.
 */
export function panelLayout(shape: number[]): Layout {
  const fromFile = geometries.find(
    (g) => g.pixels!.rows === shape.at(-2) && g.pixels!.columns === shape.at(-1) && g.pixels!.segments === (shape.length >= 3 ? shape.at(-3) : 1),
  );
  if (fromFile) return fromFile;
  if (shape.length < 3) {
    const height = shape.length === 2 ? shape[0]! : 1;
    const width = shape.at(-1) ?? 1;
    return { name: "frame", width, height, panels: [{ panel: 0, x: 0, y: 0, width, height }] };
  }
  const [count, height, width] = [shape.at(-3)!, shape.at(-2)!, shape.at(-1)!];
  if (count === 8 && height === 512 && width === 1024) {
    const gap = 38;
    const panels = Array.from({ length: 8 }, (_, i) => ({ panel: i, x: (i >> 2) * (width + gap), y: (i & 3) * (height + gap), width, height }));
    return { name: "Jungfrau 4M", width: 2 * width + gap, height: 4 * height + 3 * gap, panels };
  }
  if (count === 16 && height === 352 && width === 384) {
    const inner = 20;
    const outer = 40;
    const quad = { width: 2 * width + inner, height: 2 * height + inner };
    const panels = Array.from({ length: 16 }, (_, i) => {
      const q = i >> 2;
      const p = i & 3;
      return {
        panel: i,
        x: (q & 1) * (quad.width + outer) + (p & 1) * (width + inner),
        y: (q >> 1) * (quad.height + outer) + (p >> 1) * (height + inner),
        width,
        height,
      };
    });
    return { name: "ePix10k2M", width: 2 * quad.width + outer, height: 2 * quad.height + outer, panels };
  }
  const gap = 8;
  const columns = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  const panels = Array.from({ length: count }, (_, i) => ({
    panel: i,
    x: (i % columns) * (width + gap),
    y: Math.floor(i / columns) * (height + gap),
    width,
    height,
  }));
  return { name: `${count} panels`, width: columns * width + (columns - 1) * gap, height: rows * height + (rows - 1) * gap, panels };
}

/** The frame's value at assembled pixel (x, y), with where it is; undefined in a gap or outside. */
export function valueAt(
  layout: Layout,
  values: ArrayLike<number>,
  x: number,
  y: number,
): { value: number; panel: number; row: number; column: number } | undefined {
  if (layout.pixels) {
    const raw = x >= 0 && y >= 0 && x < layout.width && y < layout.height ? layout.pixels.rawAt[Math.floor(y) * layout.width + Math.floor(x)]! : -1;
    if (raw < 0) return undefined;
    const { rows, columns } = layout.pixels;
    const row = Math.floor(raw / columns) % rows;
    return { value: Number(values[raw]), panel: Math.floor(raw / (rows * columns)), row, column: raw % columns };
  }
  for (const p of layout.panels) {
    if (x < p.x || y < p.y || x >= p.x + p.width || y >= p.y + p.height) continue;
    const row = Math.floor(y - p.y);
    const column = Math.floor(x - p.x);
    return { value: Number(values[p.panel * p.width * p.height + row * p.width + column]), panel: p.panel, row, column };
  }
  return undefined;
}

/** The assembled pixel of a panel's (row, column), as peak finders report them. */
export function placeOf(layout: Layout, panel: number, row: number, column: number): { x: number; y: number } | undefined {
  if (layout.pixels) {
    const { segments, rows, columns } = layout.pixels;
    if (panel < 0 || panel >= segments || row < 0 || row >= rows || column < 0 || column >= columns) return undefined;
    const raw = (panel * rows + row) * columns + column;
    return { x: layout.pixels.imageColumn[raw]!, y: layout.pixels.imageRow[raw]! };
  }
  const p = layout.panels.find((q) => q.panel === panel);
  return p && { x: p.x + column, y: p.y + row };
}

/** The part of the assembled image on screen: its top-left and how many image pixels a screen pixel spans (>= 1 shrinks). */
export interface View {
  x0: number;
  y0: number;
  pixelsPerScreenPixel: number;
}

/** The view that fits the whole layout into `width` x `height` screen pixels. */
export function fitView(layout: Layout, width: number, height: number): View {
  return { x0: 0, y0: 0, pixelsPerScreenPixel: Math.max(layout.width / width, layout.height / height) };
}

/**
 * The view on `width` x `height` screen pixels as max-pooled values (NaN
 * in gaps and outside): each screen pixel holds the largest value of the
 * image pixels it covers, so a one-pixel peak stays visible at any zoom.
 */
export function pooled(layout: Layout, values: ArrayLike<number>, view: View, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height).fill(Number.NaN);
  const k = view.pixelsPerScreenPixel;
  if (layout.pixels) {
    pooledPixels(layout, layout.pixels, values, view, width, height, out);
    return out;
  }
  for (const p of layout.panels) {
    const base = p.panel * p.width * p.height;
    // The screen pixels this panel covers.
    const sx0 = Math.max(0, Math.floor((p.x - view.x0) / k));
    const sx1 = Math.min(width, Math.ceil((p.x + p.width - view.x0) / k));
    const sy0 = Math.max(0, Math.floor((p.y - view.y0) / k));
    const sy1 = Math.min(height, Math.ceil((p.y + p.height - view.y0) / k));
    for (let sy = sy0; sy < sy1; sy++) {
      const r0 = Math.max(0, Math.floor(view.y0 + sy * k - p.y));
      const r1 = Math.min(p.height, Math.max(r0 + 1, Math.floor(view.y0 + (sy + 1) * k - p.y)));
      for (let sx = sx0; sx < sx1; sx++) {
        const c0 = Math.max(0, Math.floor(view.x0 + sx * k - p.x));
        const c1 = Math.min(p.width, Math.max(c0 + 1, Math.floor(view.x0 + (sx + 1) * k - p.x)));
        let max = Number.NEGATIVE_INFINITY;
        for (let r = r0; r < r1; r++) {
          const row = base + r * p.width;
          for (let c = c0; c < c1; c++) {
            const v = Number(values[row + c]);
            if (v > max) max = v;
          }
        }
        if (max > Number.NEGATIVE_INFINITY) out[sy * width + sx] = max;
      }
    }
  }
  return out;
}

/** Each raw pixel's screen pixel (-1 off screen) for the last view a pixel layout was shrunk into. */
const screenIndexes = new WeakMap<PixelMap, { key: string; index: Int32Array }>();

/**
 * pooled() for a layout of pixels placed one by one. Shrunk (a screen pixel
 * spans image pixels), every raw pixel goes to its screen pixel, in the
 * raw frame's order, through an index kept while the view stays; zoomed in,
 * each screen pixel looks up the raw pixel under it.
 */
function pooledPixels(layout: Layout, map: PixelMap, values: ArrayLike<number>, view: View, width: number, height: number, out: Float32Array) {
  const k = view.pixelsPerScreenPixel;
  if (k >= 1) {
    const key = `${view.x0},${view.y0},${k},${width},${height}`;
    let cached = screenIndexes.get(map);
    if (cached?.key !== key) {
      const index = new Int32Array(map.imageRow.length);
      for (let i = 0; i < index.length; i++) {
        const sx = Math.floor((map.imageColumn[i]! - view.x0) / k);
        const sy = Math.floor((map.imageRow[i]! - view.y0) / k);
        index[i] = sx >= 0 && sy >= 0 && sx < width && sy < height ? sy * width + sx : -1;
      }
      screenIndexes.set(map, (cached = { key, index }));
    }
    const index = cached.index;
    for (let i = 0; i < index.length; i++) {
      const at = index[i]!;
      if (at < 0) continue;
      const v = Number(values[i]);
      const was = out[at]!;
      if (v > was || Number.isNaN(was)) out[at] = v; // NaN: nothing there yet
    }
    return;
  }
  for (let sy = 0; sy < height; sy++) {
    const y = Math.floor(view.y0 + sy * k);
    for (let sx = 0; sx < width; sx++) {
      const x = Math.floor(view.x0 + sx * k);
      const raw = x >= 0 && y >= 0 && x < layout.width && y < layout.height ? map.rawAt[y * layout.width + x]! : -1;
      if (raw >= 0) out[sy * width + sx] = Number(values[raw]);
    }
  }
}

/**
 * Contrast limits: the `low` and `high` percentiles of a sample of the
 * values, leaving out masked (NaN) and saturated (`saturation` and above)
 * pixels, so that neither a dead region nor a hot pixel sets the scale.
 */
export function percentileRange(values: ArrayLike<number>, low: number, high: number, saturation = Number.POSITIVE_INFINITY): [number, number] {
  const step = Math.max(1, Math.floor(values.length / 50_000));
  const sample: number[] = [];
  for (let i = 0; i < values.length; i += step) {
    const v = Number(values[i]);
    if (!Number.isNaN(v) && v < saturation) sample.push(v);
  }
  if (!sample.length) return [0, 1];
  sample.sort((a, b) => a - b);
  const at = (q: number) => sample[Math.min(sample.length - 1, Math.max(0, Math.floor((q / 100) * sample.length)))]!;
  const lo = at(low);
  const hi = at(high);
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

/** How values map to colour. */
export type ScaleKind = "linear" | "log" | "asinh";

/** A value's place on the colour scale between `lo` and `hi`, in [0, 1]. */
export function scaled(kind: ScaleKind, lo: number, hi: number): (v: number) => number {
  const f =
    kind === "log"
      ? (v: number) => Math.log1p(Math.max(0, v - lo))
      : kind === "asinh"
        ? (v: number) => Math.asinh((v - lo) / ((hi - lo) / 20))
        : (v: number) => v - lo;
  const top = f(hi) || 1;
  return (v) => Math.max(0, Math.min(1, f(v) / top));
}

/** The largest value a detector's unsigned integer type holds (saturation), by its typed array. */
export function saturationOf(values: ArrayLike<number>): number {
  if (values instanceof Uint8Array) return 255;
  if (values instanceof Uint16Array) return 65535;
  if (values instanceof Uint32Array) return 4294967295;
  return Number.POSITIVE_INFINITY;
}
