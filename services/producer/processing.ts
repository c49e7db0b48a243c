/**
 * The processing pipeline: steps applied to each event in order, before
 * batching. Image steps work on the last two axes (per panel for stacked
 * detectors) and produce float32; finders add fields beside the data.
 */
import type { ProcessingPipelineConfig, StepConfig } from "./config.js";
import type { DetectorEvent, FieldInfo } from "./event.js";
import { findHits, findPeaks } from "./finders.js";
import { size, toFloat32, zeros, type NdArray } from "./ndarray.js";

/** A processing step: how it changes the fields (for the catalog and checks) and what it does to an event. */
export interface Step {
  fields(input: FieldInfo[]): FieldInfo[];
  apply(event: DetectorEvent): void;
}

function requireField(fields: FieldInfo[], name: string, step: string, dims: number): FieldInfo {
  const f = fields.find((x) => x.name === name);
  if (!f) throw new Error(`processing step ${step}: no field "${name}"; the fields are ${fields.map((x) => x.name).join(", ")}`);
  if (f.shape.length < dims) throw new Error(`processing step ${step}: field "${name}" has shape [${f.shape}], it needs at least ${dims} dimensions`);
  return f;
}

const replace = (fields: FieldInfo[], f: FieldInfo) => fields.map((x) => (x.name === f.name ? f : x));

/** Applies `fn` to each [h, w] plane of an array whose last two axes are an image. */
function perPlane(a: NdArray, h2: number, w2: number, fn: (src: Float32Array, h: number, w: number, dst: Float32Array) => void): NdArray {
  const [h, w] = a.shape.slice(-2) as [number, number];
  const lead = a.shape.slice(0, -2);
  const planes = size(lead);
  const src = toFloat32(a);
  const out = new Float32Array(planes * h2 * w2);
  for (let p = 0; p < planes; p++) fn(src.subarray(p * h * w, (p + 1) * h * w), h, w, out.subarray(p * h2 * w2, (p + 1) * h2 * w2));
  return { dtype: "float32", shape: [...lead, h2, w2], data: out };
}

export function createStep(config: StepConfig): Step {
  switch (config.type) {
    case "PadCrop": {
      const { height: H, width: W } = config;
      return {
        fields(input) {
          const f = requireField(input, config.data_source, config.type, 2);
          const lead = f.shape.slice(0, -2);
          return replace(input, { ...f, dtype: "float32", shape: [...(config.channel_dim && lead.length === 0 ? [1] : lead), H, W] });
        },
        apply(event) {
          const a = event.fields[config.data_source]!;
          const out = perPlane(a, H, W, (src, h, w, dst) => {
            // Where the source's top-left lands in the target (negative: cropped).
            const oy = config.anchor === "center" ? Math.floor((H - h) / 2) : 0;
            const ox = config.anchor === "center" ? Math.floor((W - w) / 2) : 0;
            for (let y = 0; y < H; y++) {
              const sy = y - oy;
              if (sy < 0 || sy >= h) continue;
              for (let x = 0; x < W; x++) {
                const sx = x - ox;
                if (sx >= 0 && sx < w) dst[y * W + x] = src[sy * w + sx]!;
              }
            }
          });
          if (config.channel_dim && out.shape.length === 2) out.shape = [1, ...out.shape];
          event.fields[config.data_source] = out;
        },
      };
    }
    case "RegionOfInterest": {
      const h2 = config.y1 - config.y0;
      const w2 = config.x1 - config.x0;
      return {
        fields(input) {
          const f = requireField(input, config.data_source, config.type, 2);
          const [h, w] = f.shape.slice(-2) as [number, number];
          if (config.y1 > h || config.x1 > w || h2 <= 0 || w2 <= 0) {
            throw new Error(
              `processing step RegionOfInterest: [${config.y0}:${config.y1}, ${config.x0}:${config.x1}] is not inside "${config.data_source}" (${h} x ${w})`,
            );
          }
          return replace(input, { ...f, dtype: "float32", shape: [...f.shape.slice(0, -2), h2, w2] });
        },
        apply(event) {
          event.fields[config.data_source] = perPlane(event.fields[config.data_source]!, h2, w2, (src, _h, w, dst) => {
            for (let y = 0; y < h2; y++) dst.set(src.subarray((y + config.y0) * w + config.x0, (y + config.y0) * w + config.x1), y * w2);
          });
        },
      };
    }
    case "Binning": {
      const k = config.factor;
      return {
        fields(input) {
          const f = requireField(input, config.data_source, config.type, 2);
          const [h, w] = f.shape.slice(-2) as [number, number];
          return replace(input, { ...f, dtype: "float32", shape: [...f.shape.slice(0, -2), Math.floor(h / k), Math.floor(w / k)] });
        },
        apply(event) {
          const [h, w] = event.fields[config.data_source]!.shape.slice(-2) as [number, number];
          const h2 = Math.floor(h / k);
          const w2 = Math.floor(w / k);
          event.fields[config.data_source] = perPlane(event.fields[config.data_source]!, h2, w2, (src, _h, sw, dst) => {
            for (let y = 0; y < h2 * k; y++) for (let x = 0; x < w2 * k; x++) dst[Math.floor(y / k) * w2 + Math.floor(x / k)]! += src[y * sw + x]!;
          });
        },
      };
    }
    case "Threshold":
      return {
        fields(input) {
          requireField(input, config.data_source, config.type, 0);
          return input;
        },
        apply(event) {
          const d = event.fields[config.data_source]!.data;
          if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
            const cut = BigInt(Math.ceil(config.value));
            for (let i = 0; i < d.length; i++) if (d[i]! < cut) d[i] = 0n;
          } else {
            const n = d as Float32Array;
            for (let i = 0; i < n.length; i++) if (n[i]! < config.value) n[i] = 0;
          }
        },
      };
    case "PeakFinder": {
      const o = {
        snr: config.snr,
        minIntensity: config.min_intensity,
        minPixels: config.min_pixels,
        maxPixels: config.max_pixels,
        radius: config.radius,
        maxPeaks: config.max_peaks,
      };
      return {
        fields(input) {
          requireField(input, config.data_source, config.type, 2);
          return [
            ...input,
            {
              name: `${config.data_source}_peaks`,
              dtype: "float32",
              shape: [config.max_peaks, 3],
              description: "found peaks: row, column, integrated intensity (NaN rows unused)",
            },
            { name: `${config.data_source}_npeaks`, dtype: "int32", shape: [], description: "number of peaks found" },
            { name: `${config.data_source}_hit`, dtype: "uint8", shape: [], description: `1 when the frame has at least ${config.min_peaks_for_hit} peaks` },
          ];
        },
        apply(event) {
          const a = event.fields[config.data_source]!;
          const cols = a.shape.at(-1)!;
          const peaks = findPeaks(toFloat32(a), size(a.shape) / cols, cols, o);
          const list = new Float32Array(config.max_peaks * 3).fill(Number.NaN);
          peaks.forEach((p, i) => list.set([p.y, p.x, p.intensity], i * 3));
          event.fields[`${config.data_source}_peaks`] = { dtype: "float32", shape: [config.max_peaks, 3], data: list };
          event.fields[`${config.data_source}_npeaks`] = { dtype: "int32", shape: [], data: new Int32Array([peaks.length]) };
          event.fields[`${config.data_source}_hit`] = { dtype: "uint8", shape: [], data: new Uint8Array([peaks.length >= config.min_peaks_for_hit ? 1 : 0]) };
        },
      };
    }
    case "TimeOfFlightHits": {
      const o = { fraction: config.fraction, delay: config.delay, threshold: config.threshold, negative: config.negative, maxHits: config.max_hits };
      return {
        fields(input) {
          const f = requireField(input, config.data_source, config.type, 1);
          const channels = f.shape.length > 1 ? size(f.shape.slice(0, -1)) : 1;
          return [
            ...input,
            {
              name: `${config.data_source}_hits`,
              dtype: "float32",
              shape: [channels, config.max_hits],
              description: "hit times per channel, in samples (NaN unused)",
            },
            { name: `${config.data_source}_nhits`, dtype: "int32", shape: [channels], description: "hits found per channel" },
          ];
        },
        apply(event) {
          const a = event.fields[config.data_source]!;
          const samples = a.shape.at(-1)!;
          const channels = size(a.shape) / samples;
          const wave = a.data instanceof Int16Array ? a.data : toFloat32(a);
          const hits = new Float32Array(channels * config.max_hits).fill(Number.NaN);
          const counts = new Int32Array(channels);
          for (let ch = 0; ch < channels; ch++) {
            const found = findHits(wave, ch * samples, samples, o);
            counts[ch] = found.length;
            hits.set(found, ch * config.max_hits);
          }
          event.fields[`${config.data_source}_hits`] = { dtype: "float32", shape: [channels, config.max_hits], data: hits };
          event.fields[`${config.data_source}_nhits`] = { dtype: "int32", shape: [channels], data: counts };
        },
      };
    }
  }
}

type PeaknetConfig = Extract<ProcessingPipelineConfig, { type: "PeaknetPreprocessingPipeline" }>;

/**
 * lclstreamer's PeaknetPreprocessingPipeline, per event: every 2-D field (an
 * image, whatever its name) is zero-padded to target_height x target_width
 * (never cropped: a larger image keeps its size; "center" puts the odd pixel
 * bottom and right), then, with add_channel_dim, repeated into
 * num_channels x H x W. Its dtype stays; other fields pass unchanged.
 */
export function createPeaknetStep(config: PeaknetConfig): Step {
  const target = (h: number, w: number) => [Math.max(h, config.target_height), Math.max(w, config.target_width)] as const;
  const channels = config.add_channel_dim ? [config.num_channels] : [];
  return {
    fields(input) {
      return input.map((f) => (f.shape.length === 2 ? { ...f, shape: [...channels, ...target(f.shape[0]!, f.shape[1]!)] } : f));
    },
    apply(event) {
      for (const [name, a] of Object.entries(event.fields)) {
        if (a.shape.length !== 2) continue;
        const [h, w] = a.shape as [number, number];
        const [H, W] = target(h, w);
        const top = config.pad_style === "center" ? Math.floor((H - h) / 2) : 0;
        const left = config.pad_style === "center" ? Math.floor((W - w) / 2) : 0;
        const out = zeros(a.dtype, [...channels, H, W]);
        const plane = out.data.subarray(0, H * W) as typeof a.data;
        for (let y = 0; y < h; y++) (plane as Uint8Array).set((a.data as Uint8Array).subarray(y * w, (y + 1) * w), (y + top) * W + left);
        for (let c = 1; c < (channels[0] ?? 1); c++) (out.data as Uint8Array).set(plane as Uint8Array, c * H * W);
        event.fields[name] = out;
      }
    },
  };
}
