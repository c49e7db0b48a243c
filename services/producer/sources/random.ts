/** lclstreamer's GenericRandomNumpyArray: arrays of a shape and dtype filled with seeded random values. */
import type { DataSourceConfig, ProducerConfig } from "../config.js";
import { positionsOf, type DetectorEvent, type EventSource, type FieldInfo } from "../event.js";
import { zeros, type Dtype, type NdArray } from "../ndarray.js";
import { Prng } from "../prng.js";

type RandomArray = Extract<DataSourceConfig, { type: "random_array" }>;
type RandomConfig = Extract<ProducerConfig["event_source"], { type: "random" }>;

export class RandomSource implements EventSource {
  readonly eventCount: number;
  readonly #config: RandomConfig;
  readonly #arrays: [string, RandomArray][] = [];
  readonly #timestamps: string[] = [];

  constructor(config: ProducerConfig) {
    this.#config = config.event_source as RandomConfig;
    this.eventCount = this.#config.events;
    for (const [name, s] of Object.entries(config.data_sources)) {
      if (s.type === "random_array") this.#arrays.push([name, s]);
      else if (s.type === "timestamp") this.#timestamps.push(name);
    }
  }

  fields(): FieldInfo[] {
    return [
      ...this.#arrays.map(([name, a]) => ({
        name,
        dtype: a.dtype as Dtype,
        shape: a.shape,
        description: "random values: floats in [0, 1), integers over the type's range",
      })),
      ...this.#timestamps.map((name) => ({ name, dtype: "uint64" as Dtype, shape: [], description: "event time", unit: "ns since the Unix epoch" })),
    ];
  }

  event(index: number): DetectorEvent {
    const rng = new Prng(this.#config.seed, index + 1);
    const timeNs = BigInt(Date.UTC(2026, 0, 1)) * 1_000_000n + BigInt(index) * 1_000_000n;
    const fields: Record<string, NdArray> = {};
    for (const [name, a] of this.#arrays) {
      const arr = zeros(a.dtype as Dtype, a.shape);
      const d = arr.data;
      if (d instanceof Float32Array || d instanceof Float64Array) for (let i = 0; i < d.length; i++) d[i] = rng.uniform();
      else if (d instanceof BigInt64Array || d instanceof BigUint64Array) for (let i = 0; i < d.length; i++) d[i] = BigInt(rng.next());
      else {
        const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
        for (let i = 0; i < bytes.length; i++) bytes[i] = a.dtype === "bool" ? rng.next() & 1 : rng.next() & 0xff;
      }
      fields[name] = arr;
    }
    for (const name of this.#timestamps) fields[name] = { dtype: "uint64", shape: [], data: new BigUint64Array([timeNs]) };
    return { index, timeNs, fields };
  }

  async *events(rank: number, ranks: number, start: number, signal: AbortSignal): AsyncGenerator<DetectorEvent> {
    for (const index of positionsOf(rank, ranks, start, this.eventCount)) {
      signal.throwIfAborted();
      yield this.event(index);
    }
  }

  close(): void {}
}
