/**
 * A detector frame as a scientist reads it: panels placed where they sit on
 * the detector (with their gaps), shrunk to the screen by max-pooling (a
 * single bright pixel survives), a window of it at full resolution when
 * zoomed, contrast from percentiles that leave out masked and saturated
 * pixels, and linear, log and asinh scales. Pure functions of arrays, so
 * they are tested without a browser.
 */

/** Where one panel of a frame lands in the assembled image, in pixels. */
export interface PanelPlace {
  /** The panel's index in the frame's leading axis (0 for a 2-D frame). */
  panel: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** An assembled detector: its size and its panels' places. */
export interface Layout {
  name: string;
  width: number;
  height: number;
  panels: PanelPlace[];
}

/**
 * The layout of a frame of `shape` (panels x rows x columns, or rows x
 * columns). Known detectors by their raw shapes: Jungfrau 4M (8 modules of
 * 512 x 1024, two columns of four, 38 px gaps between modules), ePix10k2M
 * (16 panels of 352 x 384, four quadrants of two by two, 20 px gaps inside
 * a quadrant, 40 px between quadrants). These are approximations of the
 * instruments' arrangement; a psana geometry file is not read. Any other
 * stack of panels goes on a near-square grid with 8 px gaps.
 */
export function panelLayout(shape: number[]): Layout {
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
