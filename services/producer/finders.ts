/**
 * Feature finders that reduce detector data at the source: Bragg peaks on
 * area-detector frames (peakfinder8-style: a local background and noise per
 * tile, pixels above background + snr * noise grouped into connected peaks
 * of a bounded size, an intensity-weighted centre each) and time-of-flight
 * hits on digitizer waveforms (constant-fraction discrimination).
 */

/** A peak: centre row and column (in the frame's flattened rows), integrated intensity over background, pixel count. */
export interface Peak {
  y: number;
  x: number;
  intensity: number;
  pixels: number;
}

export interface PeakFinderOptions {
  snr: number;
  minIntensity: number;
  minPixels: number;
  maxPixels: number;
  /** Tile half-size for the local background. */
  radius: number;
  maxPeaks: number;
}

const tileOf = (radius: number) => Math.max(8, 4 * radius);

/** Finds peaks in a frame of `rows` x `cols` (rows of all panels stacked). */
export function findPeaks(frame: Float32Array, rows: number, cols: number, o: PeakFinderOptions): Peak[] {
  const tile = tileOf(o.radius);
  const tilesY = Math.ceil(rows / tile);
  const tilesX = Math.ceil(cols / tile);
  const mean = new Float32Array(tilesY * tilesX);
  const sigma = new Float32Array(tilesY * tilesX);
  // Local background: mean and deviation per tile, once sigma-clipped so peaks do not raise it.
  for (let ty = 0; ty < tilesY; ty++) {
    for (let tx = 0; tx < tilesX; tx++) {
      let cut = Infinity;
      let m = 0;
      let s = 0;
      for (let pass = 0; pass < 2; pass++) {
        let n = 0;
        let sum = 0;
        let sum2 = 0;
        for (let y = ty * tile; y < Math.min(rows, (ty + 1) * tile); y++) {
          for (let x = tx * tile, i = y * cols + x; x < Math.min(cols, (tx + 1) * tile); x++, i++) {
            const v = frame[i]!;
            if (v > cut) continue;
            n++;
            sum += v;
            sum2 += v * v;
          }
        }
        m = n ? sum / n : 0;
        s = n ? Math.sqrt(Math.max(0, sum2 / n - m * m)) : 0;
        cut = m + 3 * s;
      }
      mean[ty * tilesX + tx] = m;
      sigma[ty * tilesX + tx] = s;
    }
  }

  const seen = new Uint8Array(rows * cols);
  const stack: number[] = [];
  const peaks: Peak[] = [];
  const above = (i: number) => {
    const t = Math.floor(i / cols / tile) * tilesX + Math.floor((i % cols) / tile);
    const v = frame[i]! - mean[t]!;
    return v > o.snr * sigma[t]! ? v : 0;
  };
  for (let i = 0; i < frame.length; i++) {
    if (seen[i] || !above(i)) continue;
    // Flood the connected pixels above threshold.
    let pixels = 0;
    let total = 0;
    let sy = 0;
    let sx = 0;
    stack.push(i);
    seen[i] = 1;
    while (stack.length) {
      const j = stack.pop()!;
      const v = above(j);
      const y = Math.floor(j / cols);
      const x = j % cols;
      pixels++;
      total += v;
      sy += v * y;
      sx += v * x;
      for (const k of [x > 0 ? j - 1 : -1, x < cols - 1 ? j + 1 : -1, y > 0 ? j - cols : -1, y < rows - 1 ? j + cols : -1]) {
        if (k >= 0 && !seen[k] && above(k)) {
          seen[k] = 1;
          stack.push(k);
        }
      }
    }
    if (pixels < o.minPixels || pixels > o.maxPixels || total < o.minIntensity) continue;
    peaks.push({ y: sy / total, x: sx / total, intensity: total, pixels });
  }
  // The brightest first, when there are more than the list holds.
  return peaks.sort((a, b) => b.intensity - a.intensity).slice(0, o.maxPeaks);
}

export interface CfdOptions {
  fraction: number;
  delay: number;
  threshold: number;
  negative: boolean;
  maxHits: number;
}

/**
 * Hit times (in samples, fractional) on one waveform by constant-fraction
 * discrimination: armed when the baseline-subtracted pulse passes the
 * threshold, the time is where fraction * s(t) - s(t - delay) crosses zero.
 */
export function findHits(wave: Float32Array | Int16Array, start: number, length: number, o: CfdOptions): number[] {
  const sign = o.negative ? -1 : 1;
  // Baseline: the median-like mean of the quiet samples.
  let sum = 0;
  let n = 0;
  for (let t = 0; t < length; t++) {
    const v = sign * wave[start + t]!;
    if (Math.abs(v) < o.threshold) {
      sum += v;
      n++;
    }
  }
  const base = n ? sum / n : 0;
  const s = (t: number) => (t < 0 ? 0 : sign * wave[start + t]! - base);
  const cfd = (t: number) => o.fraction * s(t) - s(t - o.delay);
  const hits: number[] = [];
  let armed = false;
  for (let t = 1; t < length && hits.length < o.maxHits; t++) {
    if (!armed && s(t) > o.threshold) armed = true;
    if (armed && cfd(t - 1) > 0 && cfd(t) <= 0) {
      const a = cfd(t - 1);
      const b = cfd(t);
      hits.push(t - 1 + a / (a - b));
      armed = false;
      // Wait for the pulse to fall back before arming again.
      while (t < length - 1 && s(t) > o.threshold / 2) t++;
    }
  }
  return hits;
}
