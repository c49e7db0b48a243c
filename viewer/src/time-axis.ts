/**
 * A waveform's time axis in nanoseconds. The samples' times come from the
 * data when it carries them: psana's digitizer interfaces give per-sample
 * times in seconds (acqiris `raw.times`, hsd `waveforms()["times"]`), which
 * a producer config names `<field>_times`. Otherwise from the request's
 * producer config: a data source's `sample_interval_ns` (the synthetic
 * digitizer's). Without either, waveforms are drawn in samples.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { EventArray } from "./render.js";

/** The synthetic digitizer's `sample_interval_ns` when its config leaves it out (its default in the producer's config schema). */
export const SYNTHETIC_DIGITIZER_INTERVAL_NS = 0.15625;

/** Time of sample 0 and the time between samples, ns. */
export interface TimeAxis {
  startNs: number;
  stepNs: number;
}

/** The time axis of waveform field `name`, from its `_times` companion or the producer config; undefined when neither gives one. */
export function waveformTime(name: string, times: EventArray | undefined, producer: JsonObject | undefined): TimeAxis | undefined {
  const samples = times?.shape.at(-1) ?? 0;
  if (times && samples >= 2) {
    const [first, last] = [Number(times.values[0]), Number(times.values[samples - 1])];
    const stepNs = ((last - first) / (samples - 1)) * 1e9;
    if (Number.isFinite(stepNs) && stepNs > 0) return { startNs: first * 1e9, stepNs };
  }
  const source = member(member(producer, "data_sources"), name);
  const interval = member(source, "sample_interval_ns") ?? (member(source, "type") === "SyntheticDigitizer" ? SYNTHETIC_DIGITIZER_INTERVAL_NS : undefined);
  return typeof interval === "number" && interval > 0 ? { startNs: 0, stepNs: interval } : undefined;
}

const member = (o: JsonValue | undefined, key: string): JsonValue | undefined =>
  o && typeof o === "object" && !Array.isArray(o) ? (o as JsonObject)[key] : undefined;

/** About `count` round tick values (1, 2 or 5 times a power of ten) from `lo` to `hi`. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  if (!(raw > 0)) return [lo];
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}
