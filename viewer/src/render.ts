/** Drawing: arrays from batches to false-colour detector images with a colour bar, and waveforms. */
import { DataType, type Array as ArrayMessage } from "../../gen/lclstream/data/v1/data_pb.js";
import { niceTicks, type TimeAxis } from "./time-axis.js";
import { fitView, type Layout, panelLayout, percentileRange, placeOf, pooled, saturationOf, type ScaleKind, scaled, type View } from "./detector.js";

/** A field's values for one event, as numbers, with its per-event shape. */
export interface EventArray {
  values: ArrayLike<number>;
  shape: number[];
}

const typed: Partial<Record<DataType, (b: ArrayBuffer) => ArrayLike<number>>> = {
  [DataType.BOOL]: (b) => new Uint8Array(b),
  [DataType.INT8]: (b) => new Int8Array(b),
  [DataType.UINT8]: (b) => new Uint8Array(b),
  [DataType.INT16]: (b) => new Int16Array(b),
  [DataType.UINT16]: (b) => new Uint16Array(b),
  [DataType.INT32]: (b) => new Int32Array(b),
  [DataType.UINT32]: (b) => new Uint32Array(b),
  [DataType.FLOAT32]: (b) => new Float32Array(b),
  [DataType.FLOAT64]: (b) => new Float64Array(b),
};

/** Every value of a columnar array, typed (a copy, aligned for the view: the message's bytes may start anywhere); undefined for types the viewer cannot draw. */
export function valuesOf(a: ArrayMessage): ArrayLike<number> | undefined {
  const view = typed[a.dtype];
  return view && !a.compression ? view(a.data.slice().buffer) : undefined;
}

/** Event `index` of a columnar array (leading dimension = events); undefined for types the viewer cannot draw. */
export function eventOf(a: ArrayMessage, index: number): EventArray | undefined {
  const view = typed[a.dtype];
  const shape = a.shape.map(Number);
  const events = shape[0] ?? 0;
  if (!view || events === 0 || a.compression) return undefined;
  const per = a.data.byteLength / events;
  const bytes = a.data.slice(per * index, per * (index + 1));
  return { values: view(bytes.buffer), shape: shape.slice(1) };
}

// Viridis, by a few anchors, interpolated to 256 entries.
const anchors = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
const lut = Array.from({ length: 256 }, (_, i) => {
  const x = (i / 255) * (anchors.length - 1);
  const lo = Math.floor(x);
  const hi = Math.min(lo + 1, anchors.length - 1);
  const f = x - lo;
  return anchors[lo]!.map((c, k) => Math.round(c + (anchors[hi]![k]! - c) * f));
});

/** What a drawn frame was: its layout, the view, the contrast, and where its peaks were circled (canvas pixels). */
export interface DrawnImage {
  layout: Layout;
  view: View;
  lo: number;
  hi: number;
  peaks: { x: number; y: number }[];
}

/**
 * Draws a detector frame in its panels' places (see detector.ts): the view
 * given, or the whole frame fitted to the canvas, max-pooled, in false
 * colour on the scale asked for, with contrast from the 1st to 99.5th
 * percentile of the unsaturated, unmasked pixels shown (or their whole range);
 * peaks (stacked row, column) circled.
 */
export function drawImage(
  canvas: HTMLCanvasElement,
  image: EventArray,
  opts: { kind: ScaleKind; auto: boolean; view?: View; peaks?: EventArray },
  side = 768,
): DrawnImage {
  const layout = panelLayout(image.shape);
  canvas.width = side;
  canvas.height = Math.max(1, Math.round(Math.min(side, (side * layout.height) / layout.width)));
  const view = opts.view ?? fitView(layout, canvas.width, canvas.height);
  const values = pooled(layout, image.values, view, canvas.width, canvas.height);
  // Contrast from what is shown: max-pooling raises the background, and the raw frame's percentiles would wash it out.
  const [lo, hi] = opts.auto ? percentileRange(values, 1, 99.5, saturationOf(image.values)) : percentileRange(values, 0, 100);
  const toUnit = scaled(opts.kind, lo, hi);
  const ctx = canvas.getContext("2d")!;
  const pixels = ctx.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const o = i * 4;
    if (Number.isNaN(v)) {
      pixels.data[o] = pixels.data[o + 1] = pixels.data[o + 2] = 24; // gaps and masked pixels
    } else {
      const c = lut[Math.round(toUnit(v) * 255)]!;
      pixels.data[o] = c[0]!;
      pixels.data[o + 1] = c[1]!;
      pixels.data[o + 2] = c[2]!;
    }
    pixels.data[o + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  const peaks: { x: number; y: number }[] = [];
  if (opts.peaks) {
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    const rows = image.shape.at(-2) ?? 1;
    const p = opts.peaks.values;
    for (let i = 0; i + 2 < p.length; i += 3) {
      if (Number.isNaN(p[i])) continue;
      const stackedRow = Number(p[i]);
      const at = placeOf(layout, image.shape.length >= 3 ? Math.floor(stackedRow / rows) : 0, stackedRow % rows, Number(p[i + 1]));
      if (!at) continue;
      const x = (at.x - view.x0) / view.pixelsPerScreenPixel;
      const y = (at.y - view.y0) / view.pixelsPerScreenPixel;
      if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) continue;
      peaks.push({ x, y });
      ctx.beginPath();
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }
  return { layout, view, lo, hi, peaks };
}

/** Counts on a `width` x `height` grid as an image, on a log scale from none to the most (none stays dark). */
export function drawHeatmap(canvas: HTMLCanvasElement, counts: ArrayLike<number>, width: number, height: number) {
  canvas.width = width;
  canvas.height = height;
  let top = 0;
  for (let i = 0; i < counts.length; i++) top = Math.max(top, counts[i]!);
  const ctx = canvas.getContext("2d")!;
  const pixels = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const n = counts[i]!;
    const c = n > 0 ? lut[Math.round((Math.log1p(n) / Math.log1p(top || 1)) * 255)]! : [17, 17, 17];
    pixels.data.set([c[0]!, c[1]!, c[2]!, 255], i * 4);
  }
  ctx.putImageData(pixels, 0, 0);
}

/** A colour bar for the scale: the colours from `lo` to `hi`, with five values marked. */
export function drawColourBar(canvas: HTMLCanvasElement, kind: ScaleKind, lo: number, hi: number) {
  const ctx = canvas.getContext("2d")!;
  const w = canvas.width;
  const barTop = 4;
  const barHeight = 14;
  ctx.clearRect(0, 0, w, canvas.height);
  for (let x = 0; x < w; x++) {
    const c = lut[Math.round((x / (w - 1)) * 255)]!;
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.fillRect(x, barTop, 1, barHeight);
  }
  // Where the scale puts a value, found by bisection (the scales are monotonic).
  const toUnit = scaled(kind, lo, hi);
  const valueAtUnit = (t: number) => {
    let [a, b] = [lo, hi];
    for (let i = 0; i < 40; i++) {
      const m = (a + b) / 2;
      if (toUnit(m) < t) a = m;
      else b = m;
    }
    return (a + b) / 2;
  };
  ctx.font = "14px system-ui, sans-serif";
  ctx.fillStyle = "#888"; // readable on a light page and a dark one
  ctx.strokeStyle = ctx.fillStyle;
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const x = Math.round(t * (w - 1));
    ctx.beginPath();
    ctx.moveTo(x + 0.5, barTop + barHeight);
    ctx.lineTo(x + 0.5, barTop + barHeight + 4);
    ctx.stroke();
    ctx.textAlign = t === 0 ? "left" : t === 1 ? "right" : "center";
    ctx.fillText(formatValue(valueAtUnit(t)), x, barTop + barHeight + 16);
  }
}

/** A value for a label: few digits, exponent when large or small. */
export function formatValue(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-2) ? v.toExponential(1) : Number(v.toPrecision(3)).toString();
}

/**
 * Draws waveforms (channels x samples), one band a channel, labelled with
 * the channel and its amplitude range, over a time axis in ns when `time`
 * gives the sample period (see time-axis.ts), else over samples; hit times
 * (channels x hits in samples, NaN unused) as red marks.
 */
export function drawWaveforms(canvas: HTMLCanvasElement, wave: EventArray, hits?: EventArray, time?: TimeAxis) {
  const samples = wave.shape.at(-1) ?? wave.values.length;
  const channels = wave.values.length / samples;
  const band = 120;
  const left = 64;
  const axis = 28;
  canvas.width = 800;
  canvas.height = band * channels + axis;
  const plotWidth = canvas.width - left - 8;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "14px system-ui, sans-serif";
  const xOf = (sample: number) => left + (sample / samples) * plotWidth;
  for (let ch = 0; ch < channels; ch++) {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < samples; i++) {
      const v = Number(wave.values[ch * samples + i]);
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const y0 = ch * band;
    const yOf = (v: number) => y0 + band - 10 - ((v - min) / (max - min || 1)) * (band - 20);
    ctx.fillStyle = "#ccc";
    ctx.textAlign = "right";
    ctx.fillText(`ch ${ch}`, left - 6, y0 + band / 2 + 4);
    ctx.fillText(formatValue(max), left - 6, y0 + 14);
    ctx.fillText(formatValue(min), left - 6, y0 + band - 8);
    ctx.strokeStyle = "#444";
    ctx.strokeRect(left + 0.5, y0 + 0.5, plotWidth, band - 1);
    ctx.strokeStyle = "#5ac8fa";
    ctx.beginPath();
    for (let i = 0; i < samples; i++) {
      const y = yOf(Number(wave.values[ch * samples + i]));
      if (i === 0) ctx.moveTo(xOf(0), y);
      else ctx.lineTo(xOf(i), y);
    }
    ctx.stroke();
    if (hits) {
      const perChannel = hits.values.length / channels;
      ctx.strokeStyle = "#ff3b30";
      for (let k = 0; k < perChannel; k++) {
        const t = Number(hits.values[ch * perChannel + k]);
        if (Number.isNaN(t)) continue;
        ctx.beginPath();
        ctx.moveTo(xOf(t), y0 + 5);
        ctx.lineTo(xOf(t), y0 + band - 5);
        ctx.stroke();
      }
    }
  }
  // The time axis: round times in ns placed at their samples, or sample numbers.
  ctx.fillStyle = "#ccc";
  ctx.strokeStyle = "#ccc";
  ctx.textAlign = "center";
  const y = channels * band;
  const [start, step] = time ? [time.startNs, time.stepNs] : [0, 1];
  for (const t of niceTicks(start, start + samples * step)) {
    const x = xOf((t - start) / step);
    ctx.beginPath();
    ctx.moveTo(x + 0.5, y);
    ctx.lineTo(x + 0.5, y + 5);
    ctx.stroke();
    ctx.fillText(formatValue(t), Math.min(x, canvas.width - 20), y + 16);
  }
  ctx.textAlign = "right";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(time ? "time (ns)" : "sample", left - 10, y + 16);
  canvas.dataset.timeAxis = time ? "ns" : "sample";
}
