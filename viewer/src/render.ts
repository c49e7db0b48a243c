/** Drawing: arrays from batches to false-colour images, waveforms and a throughput plot. */
import { DataType, type Array as ArrayMessage } from "../../gen/lclstream/data/v1/data_pb.js";

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

/** Event `index` of a columnar array (leading dimension = events); undefined for types the viewer cannot draw. */
export function eventOf(a: ArrayMessage, index: number): EventArray | undefined {
  const view = typed[a.dtype];
  const shape = a.shape.map(Number);
  const events = shape[0] ?? 0;
  if (!view || events === 0 || a.compression) return undefined;
  const per = a.data.byteLength / events;
  // A copy, aligned for the typed view (the message's bytes may start anywhere).
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

/**
 * Draws an image (rows = every axis but the last) in false colour, at most
 * `maxSide` pixels a side (strided), with optional log scale and auto
 * contrast (1st to 99.5th percentile); peaks (row, column) are circled.
 */
export function drawImage(canvas: HTMLCanvasElement, image: EventArray, opts: { log: boolean; auto: boolean; peaks?: EventArray }, maxSide = 1024) {
  const width = image.shape.at(-1) ?? 1;
  const height = image.values.length / width;
  const stride = Math.max(1, Math.ceil(Math.max(width, height) / maxSide));
  const w = Math.floor(width / stride);
  const h = Math.floor(height / stride);
  canvas.width = w;
  canvas.height = h;
  const sample: number[] = [];
  for (let i = 0; i < image.values.length; i += Math.max(1, Math.floor(image.values.length / 20000))) sample.push(Number(image.values[i]));
  sample.sort((a, b) => a - b);
  const lo = opts.auto ? sample[Math.floor(sample.length * 0.01)]! : sample[0]!;
  const hi = opts.auto ? sample[Math.floor(sample.length * 0.995)]! : sample.at(-1)!;
  const scale = opts.log ? (v: number) => Math.log1p(Math.max(0, v - lo)) : (v: number) => v - lo;
  const top = scale(hi) || 1;
  const ctx = canvas.getContext("2d")!;
  const pixels = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = scale(Number(image.values[y * stride * width + x * stride]));
      const c = lut[Math.max(0, Math.min(255, Math.round((v / top) * 255)))]!;
      const o = (y * w + x) * 4;
      pixels.data[o] = c[0]!;
      pixels.data[o + 1] = c[1]!;
      pixels.data[o + 2] = c[2]!;
      pixels.data[o + 3] = 255;
    }
  }
  ctx.putImageData(pixels, 0, 0);
  if (opts.peaks) {
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = Math.max(1, w / 400);
    const p = opts.peaks.values;
    for (let i = 0; i + 2 < p.length; i += 3) {
      if (Number.isNaN(p[i])) continue;
      ctx.beginPath();
      ctx.arc(Number(p[i + 1]) / stride, Number(p[i]) / stride, Math.max(4, w / 80), 0, 2 * Math.PI);
      ctx.stroke();
    }
  }
}

/** Draws waveforms (channels x samples), hit times (channels x hits, NaN unused) as vertical marks. */
export function drawWaveforms(canvas: HTMLCanvasElement, wave: EventArray, hits?: EventArray) {
  const samples = wave.shape.at(-1) ?? wave.values.length;
  const channels = wave.values.length / samples;
  canvas.width = 800;
  canvas.height = 120 * channels;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let ch = 0; ch < channels; ch++) {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < samples; i++) {
      const v = Number(wave.values[ch * samples + i]);
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const y0 = ch * 120;
    ctx.strokeStyle = "#5ac8fa";
    ctx.beginPath();
    for (let i = 0; i < samples; i++) {
      const y = y0 + 110 - ((Number(wave.values[ch * samples + i]) - min) / (max - min || 1)) * 100;
      if (i === 0) ctx.moveTo(0, y);
      else ctx.lineTo((i / samples) * canvas.width, y);
    }
    ctx.stroke();
    if (hits) {
      const perChannel = hits.values.length / channels;
      ctx.strokeStyle = "#ff3b30";
      for (let k = 0; k < perChannel; k++) {
        const t = Number(hits.values[ch * perChannel + k]);
        if (Number.isNaN(t)) continue;
        ctx.beginPath();
        ctx.moveTo((t / samples) * canvas.width, y0 + 5);
        ctx.lineTo((t / samples) * canvas.width, y0 + 115);
        ctx.stroke();
      }
    }
  }
}

/** Two series over time (events/s, MB/s), each scaled to its own maximum, with a legend. */
export function drawThroughput(canvas: HTMLCanvasElement, points: { events: number; mb: number }[]) {
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const series: [keyof (typeof points)[number], string, string][] = [
    ["events", "#5ac8fa", "events/s"],
    ["mb", "#ffcc00", "MB/s"],
  ];
  ctx.font = "12px system-ui, sans-serif";
  series.forEach(([, colour, label], i) => {
    ctx.fillStyle = colour;
    ctx.fillText(label, 8 + i * 70, 14);
  });
  for (const [key, colour] of series) {
    const max = Math.max(1e-9, ...points.map((p) => p[key]));
    ctx.strokeStyle = colour;
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = (i / Math.max(1, points.length - 1)) * canvas.width;
      const y = canvas.height - 10 - (p[key] / max) * (canvas.height - 20);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}
