/**
 * lclstreamer's InternalEventSource, with lclstream's synthetic facility:
 * deterministic events for a seed, each computed from (seed, event index)
 * alone, so any split into ranks yields the same events. lclstreamer's
 * GenericRandomNumpyArray, IntValue and FloatValue; area-detector frames of
 * real geometries (background, noise, Bragg peaks), digitizer waveforms with
 * time-of-flight pulses, scalars and timestamps.
 *
 * number_of_events_to_generate is the total over all ranks, as lclstreamer
 * documents it (its code has every rank generate all of them).
 *
 * Fast enough to outrun the network: noise comes from a few frames made at
 * start (each event takes one, chosen by its index) and peaks are drawn on a
 * copy, so a 2048 x 2048 frame costs a memory copy and a few hundred pixels.
 */
import type { DataSourceConfig, ProducerConfig } from "../config.js";
import { geometries, shapeOf } from "../config.js";
import type { DetectorEvent, EventSource, FieldInfo } from "../event.js";
import { positionsOf } from "../event.js";
import { fromFloat32, size, zeros, type Dtype, type NdArray } from "../ndarray.js";
import { Prng } from "../prng.js";

type AreaDetector = Extract<DataSourceConfig, { type: "SyntheticAreaDetector" }>;
type Digitizer = Extract<DataSourceConfig, { type: "SyntheticDigitizer" }>;
type Scalar = Extract<DataSourceConfig, { type: "SyntheticScalar" }>;
type RandomArray = Extract<DataSourceConfig, { type: "GenericRandomNumpyArray" }>;
type InternalConfig = Extract<ProducerConfig["event_source"], { type: "InternalEventSource" }>;

const noisePoolSize = 4;
/** The epoch of the synthetic run: 2026-01-01T00:00:00Z. */
const runStartNs = 1_767_225_600_000_000_000n;

/** A frame's geometry: dtype and per-event shape; rows = every axis but the last, flattened. */
function frameGeometry(config: AreaDetector): { dtype: Dtype; shape: number[] } {
  const g = typeof config.geometry === "string" ? geometries[config.geometry] : config.geometry;
  return { dtype: g.dtype as Dtype, shape: [...g.shape] };
}

/** Draws a Bragg peak: a 2D Gaussian of total `intensity` at (y, x) on a width-`w` frame. */
function drawPeak(frame: Float32Array, w: number, h: number, y: number, x: number, intensity: number, sigma: number) {
  const r = Math.ceil(3 * sigma);
  const norm = intensity / (2 * Math.PI * sigma * sigma);
  for (let dy = -r; dy <= r; dy++) {
    const yy = Math.round(y) + dy;
    if (yy < 0 || yy >= h) continue;
    for (let dx = -r; dx <= r; dx++) {
      const xx = Math.round(x) + dx;
      if (xx < 0 || xx >= w) continue;
      const d2 = (yy - y) ** 2 + (xx - x) ** 2;
      frame[yy * w + xx]! += norm * Math.exp(-d2 / (2 * sigma * sigma));
    }
  }
}

class AreaDetectorModel {
  readonly dtype: Dtype;
  readonly shape: number[];
  readonly #rows: number;
  readonly #cols: number;
  readonly #panelRows: number;
  readonly #seed: number;
  /** Noise frames, made at the first event: a config is checked by building its source, which must stay cheap. */
  #pool: Float32Array[] | undefined;

  constructor(
    readonly name: string,
    readonly config: AreaDetector,
    seed: number,
  ) {
    const g = frameGeometry(config);
    this.dtype = g.dtype;
    this.shape = g.shape;
    this.#cols = g.shape.at(-1)!;
    this.#rows = size(g.shape) / this.#cols;
    this.#panelRows = g.shape.at(-2) ?? this.#rows;
    this.#seed = seed;
  }

  #noisePool(): Float32Array[] {
    // A table of normal deviates makes noise frames fast to build.
    const table = new Float32Array(1 << 16);
    const rng = new Prng(this.#seed, 0x5eed);
    for (let i = 0; i < table.length; i++) table[i] = rng.normal();
    return Array.from({ length: noisePoolSize }, () => {
      const frame = new Float32Array(this.#rows * this.#cols);
      for (let i = 0; i < frame.length; i++) frame[i] = this.config.background + this.config.noise * table[rng.next() & 0xffff]!;
      return frame;
    });
  }

  fields(): FieldInfo[] {
    const fields: FieldInfo[] = [
      { name: this.name, dtype: this.dtype, shape: this.shape, description: "area detector frame: background, noise and Bragg peaks", unit: "ADU" },
    ];
    if (this.config.truth)
      fields.push({
        name: `${this.name}_peaks_truth`,
        dtype: "float32",
        shape: [this.config.peaks.max, 3],
        description: "injected peaks: row, column, integrated intensity (NaN rows unused)",
      });
    return fields;
  }

  event(rng: Prng, index: number, out: Record<string, NdArray>) {
    const p = this.config.peaks;
    this.#pool ??= this.#noisePool();
    const frame = new Float32Array(this.#pool[index % noisePoolSize]!);
    const count = rng.int(p.min, Math.max(p.min, p.max));
    const truth = new Float32Array(p.max * 3).fill(Number.NaN);
    const margin = Math.ceil(3 * p.sigma) + 1;
    for (let k = 0; k < count; k++) {
      // Within one panel, away from its edges.
      const panel = rng.int(0, this.#rows / this.#panelRows - 1);
      const y = panel * this.#panelRows + margin + rng.uniform() * (this.#panelRows - 2 * margin);
      const x = margin + rng.uniform() * (this.#cols - 2 * margin);
      const intensity = p.intensity * (0.5 + rng.uniform());
      drawPeak(frame, this.#cols, this.#rows, y, x, intensity, p.sigma);
      if (k < p.max) truth.set([y, x, intensity], k * 3);
    }
    out[this.name] = fromFloat32(frame, this.dtype, this.shape);
    if (this.config.truth) out[`${this.name}_peaks_truth`] = { dtype: "float32", shape: [p.max, 3], data: truth };
  }
}

class DigitizerModel {
  constructor(
    readonly name: string,
    readonly config: Digitizer,
  ) {}

  fields(): FieldInfo[] {
    const c = this.config;
    const fields: FieldInfo[] = [
      { name: this.name, dtype: "int16", shape: [c.channels, c.samples], description: "digitizer waveforms with negative time-of-flight pulses", unit: "ADC" },
    ];
    if (c.truth)
      fields.push({
        name: `${this.name}_hits_truth`,
        dtype: "float32",
        shape: [c.channels, c.hits.max],
        description: "injected hit times in samples (NaN unused)",
      });
    return fields;
  }

  event(rng: Prng, out: Record<string, NdArray>) {
    const c = this.config;
    const wave = new Float32Array(c.channels * c.samples);
    const truth = new Float32Array(c.channels * c.hits.max).fill(Number.NaN);
    const r = Math.ceil(4 * c.width);
    for (let ch = 0; ch < c.channels; ch++) {
      const row = ch * c.samples;
      for (let s = 0; s < c.samples; s++) wave[row + s] = c.baseline + c.noise * rng.normal();
      const hits = rng.int(c.hits.min, Math.max(c.hits.min, c.hits.max));
      for (let k = 0; k < hits; k++) {
        const t = r + rng.uniform() * (c.samples - 2 * r);
        const a = c.amplitude * (0.6 + 0.8 * rng.uniform());
        for (let s = Math.max(0, Math.floor(t - r)); s <= Math.min(c.samples - 1, Math.ceil(t + r)); s++) {
          wave[row + s]! -= a * Math.exp(-((s - t) ** 2) / (2 * c.width * c.width));
        }
        if (k < c.hits.max) truth[ch * c.hits.max + k] = t;
      }
    }
    out[this.name] = fromFloat32(wave, "int16", [c.channels, c.samples]);
    if (c.truth) out[`${this.name}_hits_truth`] = { dtype: "float32", shape: [c.channels, c.hits.max], data: truth };
  }
}

/** Fills `d` as lclstreamer's GenericRandomNumpyArray draws: integers in [0, 254] (numpy's randint(0, 255)), floats in [0, 1). */
function fillRandom(rng: Prng, dtype: Dtype, d: NdArray["data"]): void {
  if (d instanceof Float32Array || d instanceof Float64Array) for (let i = 0; i < d.length; i++) d[i] = rng.uniform();
  else if (d instanceof BigInt64Array || d instanceof BigUint64Array) for (let i = 0; i < d.length; i++) d[i] = BigInt(rng.next() % 255);
  else if (dtype === "bool") for (let i = 0; i < d.length; i++) d[i] = rng.next() % 255 ? 1 : 0;
  else for (let i = 0; i < d.length; i++) d[i] = rng.next() % 255;
}

/**
 * Noise that events' random arrays are cut from, made once per data source
 * (its seed, name, dtype and shape): twice an event's values and 64 Ki more.
 * A draw per value cost 2-8 ms a MiB, which made a random source, not the
 * path, the limit; a window of the pool costs a copy.
 */
const noisePools = new Map<string, NdArray["data"]>();
function noisePool(seed: number, name: string, a: RandomArray, values: number): NdArray["data"] {
  const key = `${seed}|${name}|${a.array_dtype}|${values}`;
  let pool = noisePools.get(key);
  if (!pool) {
    pool = zeros(a.array_dtype, [2 * values + 65536]).data;
    fillRandom(new Prng(seed, 0x6e6f), a.array_dtype, pool);
    noisePools.set(key, pool);
  }
  return pool;
}

/**
 * A GenericRandomNumpyArray's values for one event: a window of its noise
 * pool at an offset the event's generator draws. The pool itself, viewed,
 * when no processing step can change the event's arrays in place (a copy
 * per event cost the producer a fifth of its time in garbage collection).
 */
function randomArray(rng: Prng, seed: number, name: string, a: RandomArray, view: boolean): NdArray {
  const shape = shapeOf(a.array_shape);
  const values = size(shape);
  const pool = noisePool(seed, name, a, values);
  const at = rng.next() % (pool.length - values + 1);
  const window = pool.subarray(at, at + values);
  return { dtype: a.array_dtype, shape, data: view ? window : window.slice() };
}

/** Whether a config's events go through no processing step (which could change their arrays in place). */
function unprocessed(config: ProducerConfig): boolean {
  return config.processing_pipeline.type === "BatchProcessingPipeline" && config.processing_pipeline.steps.length === 0;
}

/** The GenericRandomNumpyArray data sources of a config (any event source may have them, as in lclstreamer). */
function randomSources(config: ProducerConfig): [string, RandomArray][] {
  return Object.entries(config.data_sources).filter((e): e is [string, RandomArray] => e[1].type === "GenericRandomNumpyArray");
}

/** The fields of a config's GenericRandomNumpyArray data sources. */
export function randomFields(config: ProducerConfig): FieldInfo[] {
  return randomSources(config).map(([name, a]) => ({
    name,
    dtype: a.array_dtype,
    shape: shapeOf(a.array_shape),
    description: "random values: floats in [0, 1), integers in [0, 254]",
  }));
}

/** The GenericRandomNumpyArray values of event `index`, from the event source's seed (1 when it has none). */
export function randomArrays(config: ProducerConfig, index: number): Record<string, NdArray> {
  const seed = "seed" in config.event_source && typeof config.event_source.seed === "number" ? config.event_source.seed : 1;
  const rng = new Prng(seed, 0x4a4d ^ (index + 1));
  const view = unprocessed(config);
  return Object.fromEntries(randomSources(config).map(([name, a]) => [name, randomArray(rng, seed, name, a, view)]));
}

export class InternalSource implements EventSource {
  readonly eventCount: number;
  readonly #config: InternalConfig;
  readonly #detectors: AreaDetectorModel[] = [];
  readonly #digitizers: DigitizerModel[] = [];
  readonly #scalars: [string, Scalar][] = [];
  readonly #timestamps: string[] = [];
  readonly #random: [string, RandomArray][] = [];
  /** Random arrays as views of their noise pool (see randomArray). */
  readonly #views: boolean;
  readonly #constants: [string, NdArray][] = [];

  constructor(config: ProducerConfig) {
    this.#config = config.event_source as InternalConfig;
    this.eventCount = this.#config.number_of_events_to_generate;
    this.#views = unprocessed(config);
    for (const [name, source] of Object.entries(config.data_sources)) {
      if (source.type === "SyntheticAreaDetector") this.#detectors.push(new AreaDetectorModel(name, source, this.#config.seed));
      else if (source.type === "SyntheticDigitizer") this.#digitizers.push(new DigitizerModel(name, source));
      else if (source.type === "SyntheticScalar") this.#scalars.push([name, source]);
      else if (source.type === "SyntheticTimestamp") this.#timestamps.push(name);
      else if (source.type === "GenericRandomNumpyArray") this.#random.push([name, source]);
      // numpy.int_ and numpy.float64 0-d arrays, as lclstreamer makes them.
      else if (source.type === "IntValue") this.#constants.push([name, { dtype: "int64", shape: [], data: new BigInt64Array([BigInt(source.value)]) }]);
      else if (source.type === "FloatValue") this.#constants.push([name, { dtype: "float64", shape: [], data: new Float64Array([source.value]) }]);
    }
  }

  fields(): FieldInfo[] {
    return [
      ...this.#detectors.flatMap((d) => d.fields()),
      ...this.#digitizers.flatMap((d) => d.fields()),
      ...this.#scalars.map(([name, s]) => ({ name, dtype: s.dtype, shape: [], description: "a per-shot scalar (for example pulse energy)" })),
      ...this.#timestamps.map((name) => ({ name, dtype: "uint64" as Dtype, shape: [], description: "event time", unit: "ns since the Unix epoch" })),
      ...this.#random.map(([name, a]) => ({
        name,
        dtype: a.array_dtype,
        shape: shapeOf(a.array_shape),
        description: "random values: floats in [0, 1), integers in [0, 254]",
      })),
      ...this.#constants.map(([name, a]) => ({ name, dtype: a.dtype, shape: [], description: "the same value in every event" })),
    ];
  }

  /** The event at `index`, the same whichever rank makes it. */
  event(index: number): DetectorEvent {
    const rng = new Prng(this.#config.seed, index + 1);
    const periodNs = this.#config.rate_hz > 0 ? BigInt(Math.round(1e9 / this.#config.rate_hz)) : 1_000_000n;
    const timeNs = runStartNs + BigInt(index) * periodNs;
    const fields: Record<string, NdArray> = {};
    for (const d of this.#detectors) d.event(rng, index, fields);
    for (const d of this.#digitizers) d.event(rng, fields);
    for (const [name, s] of this.#scalars) {
      const a = zeros(s.dtype, []);
      (a.data as Float32Array | Float64Array)[0] = s.mean + s.sigma * rng.normal();
      fields[name] = a;
    }
    for (const name of this.#timestamps) fields[name] = { dtype: "uint64", shape: [], data: new BigUint64Array([timeNs]) };
    for (const [name, a] of this.#random) fields[name] = randomArray(rng, this.#config.seed, name, a, this.#views);
    // Steps may change a field in place: each event gets its own copy.
    for (const [name, a] of this.#constants) fields[name] = { ...a, data: a.data.slice() };
    return { index, timeNs, fields };
  }
  async *events(rank: number, ranks: number, start: number, signal: AbortSignal): AsyncGenerator<DetectorEvent> {
    const paced = this.#config.paced && this.#config.rate_hz > 0;
    const began = performance.now();
    let made = 0;
    for (const index of positionsOf(rank, ranks, start, this.eventCount)) {
      signal.throwIfAborted();
      if (paced) {
        const due = began + ((made * ranks) / this.#config.rate_hz) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      made++;
      yield this.event(index);
    }
  }

  close(): void {}
}
