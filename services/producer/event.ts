/** What flows through the producer before batching: events with named arrays, and the sources that make them. */
import type { Dtype, NdArray } from "./ndarray.js";

/** One event: its global index, its time and its fields. */
export interface DetectorEvent {
  index: number;
  timeNs: bigint;
  fields: Record<string, NdArray>;
  /** Text a source gives beside the arrays (psana's run info); no serializer writes it. */
  text?: Record<string, string[]>;
}

/** A field an event source fills, as the catalog lists it. */
export interface FieldInfo {
  name: string;
  dtype: Dtype;
  /** Per event (without the batch dimension). */
  shape: number[];
  description: string;
  unit?: string;
}

/** Where events come from. Ranks split the events: each event index belongs to exactly one rank. */
export interface EventSource {
  /** Events in the source. */
  readonly eventCount: number;
  fields(): FieldInfo[];
  /** This rank's events in order, from the source's linear position `start`. */
  events(rank: number, ranks: number, start: number, signal: AbortSignal): AsyncIterable<DetectorEvent>;
  close(): void;
}

/** The positions of `rank` among `ranks` in a linear order of `count` events, from `start`. */
export function* positionsOf(rank: number, ranks: number, start: number, count: number): Generator<number> {
  const first = start + ((rank - (start % ranks) + ranks) % ranks);
  for (let p = first; p < count; p += ranks) yield p;
}
