/**
 * What the viewer gathers over a run from the batches it sees (the newest,
 * through the latest-only group): for crystallography, the hit rate over
 * time, a virtual powder pattern (every peak's place on the detector) and a
 * peakogram (peak intensity against radius); for time of flight, a hit-time
 * histogram and the hits per event. Pure code over arrays, tested without a
 * browser. OnDA Monitor's panels are the model.
 */
import type { Layout } from "./detector.js";
import { placeOf } from "./detector.js";

/** Rows of `values` per event and its per-event shape, as the viewer's EventArray has them. */
export interface Column {
  values: ArrayLike<number>;
  /** Events in the batch. */
  events: number;
  /** Values per event. */
  per: number;
}

/** Hit rate over time: per time bin, events seen and hits among them. */
export class HitRate {
  readonly bins = new Map<number, { events: number; hits: number }>();
  constructor(readonly binSeconds = 2) {}

  add(hit: Column, nowSeconds: number): void {
    const t = Math.floor(nowSeconds / this.binSeconds) * this.binSeconds;
    const bin = this.bins.get(t) ?? { events: 0, hits: 0 };
    for (let e = 0; e < hit.events; e++) {
      bin.events++;
      if (Number(hit.values[e * hit.per]) > 0) bin.hits++;
    }
    this.bins.set(t, bin);
  }

  /** [times, hit rate in percent] for the bins after `sinceSeconds`. */
  series(sinceSeconds: number): [number[], number[]] {
    const times = [...this.bins.keys()].filter((t) => t >= sinceSeconds).sort((a, b) => a - b);
    return [times, times.map((t) => (100 * this.bins.get(t)!.hits) / Math.max(1, this.bins.get(t)!.events))];
  }
}

/** Peaks (stacked row, column, intensity; NaN rows unused) of each event of a batch, in assembled detector pixels. */
export function* peaksOf(peaks: Column, layout: Layout, rowsPerPanel: number, stacked: boolean): Generator<{ x: number; y: number; intensity: number }> {
  for (let e = 0; e < peaks.events; e++) {
    for (let i = e * peaks.per; i + 2 < (e + 1) * peaks.per; i += 3) {
      const row = Number(peaks.values[i]);
      if (Number.isNaN(row)) continue;
      const at = placeOf(layout, stacked ? Math.floor(row / rowsPerPanel) : 0, row % rowsPerPanel, Number(peaks.values[i + 1]));
      if (at) yield { ...at, intensity: Number(peaks.values[i + 2]) };
    }
  }
}

/** A virtual powder pattern: peaks counted on a grid `shrink` times coarser than the detector. */
export class Powder {
  readonly width: number;
  readonly height: number;
  readonly counts: Float32Array;
  constructor(
    readonly layout: Layout,
    readonly shrink = Math.max(1, Math.ceil(Math.max(layout.width, layout.height) / 512)),
  ) {
    this.width = Math.ceil(layout.width / shrink);
    this.height = Math.ceil(layout.height / shrink);
    this.counts = new Float32Array(this.width * this.height);
  }

  add(peak: { x: number; y: number }): void {
    this.counts[Math.floor(peak.y / this.shrink) * this.width + Math.floor(peak.x / this.shrink)]!++;
  }
}

/** A peakogram: peak counts by radius from the detector's centre (pixels) and log10 of the intensity. */
export class Peakogram {
  readonly counts: Float32Array;
  readonly maxRadius: number;
  constructor(
    readonly layout: Layout,
    readonly radiusBins = 64,
    readonly intensityBins = 48,
    readonly logIntensityRange: [number, number] = [0, 6],
  ) {
    this.maxRadius = Math.hypot(layout.width, layout.height) / 2;
    this.counts = new Float32Array(radiusBins * intensityBins);
  }

  add(peak: { x: number; y: number; intensity: number }): void {
    if (!(peak.intensity > 0)) return;
    const r = Math.hypot(peak.x - this.layout.width / 2, peak.y - this.layout.height / 2);
    const [lo, hi] = this.logIntensityRange;
    const li = (Math.log10(peak.intensity) - lo) / (hi - lo);
    const rb = Math.min(this.radiusBins - 1, Math.floor((r / this.maxRadius) * this.radiusBins));
    const ib = Math.min(this.intensityBins - 1, Math.max(0, Math.floor(li * this.intensityBins)));
    // Row 0 is the top: the highest intensities.
    this.counts[(this.intensityBins - 1 - ib) * this.radiusBins + rb]!++;
  }
}

/** A histogram over [0, range) in `bins` equal bins, counting what falls inside. */
export class Histogram {
  readonly counts: number[];
  constructor(
    readonly range: number,
    readonly bins: number,
  ) {
    this.counts = new Array<number>(bins).fill(0);
  }

  add(value: number): void {
    if (!(value >= 0 && value < this.range)) return;
    this.counts[Math.floor((value / this.range) * this.bins)]!++;
  }

  /** Bin starts and counts, for a plot. */
  series(): [number[], number[]] {
    return [this.counts.map((_, i) => (i * this.range) / this.bins), [...this.counts]];
  }
}
