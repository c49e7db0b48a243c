/** What flows through the producer before batching: events with named arrays, and the sources that make them. */
import type { Dtype, NdArray } from "./ndarray.js";

/** One event: its global index, its time and its fields. */
export interface DetectorEvent {
  index: number;
  timeNs: bigint;
  fields: Record<string, NdArray>;
  /** Text a source gives beside the arrays (psana's run info); no serializer writes it. */
  text?: Record<string, string[]>;
  /**
   * The source's, when it can reuse the memory of the event's arrays: called once
   * nothing reads them any more. An event dropped without it leaves its memory to
   * the garbage collector, which is always safe.
   */
  release?: () => void;
}

/**
 * Holds over memory that `releases` give back: they run once, when the last hold
 * taken is let go; never if no hold is taken. Each let-go function works once.
 */
export function holdsOver(releases: (() => void)[]): () => () => void {
  let holds = 0;
  return () => {
    holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--holds === 0) for (const release of releases.splice(0)) release();
    };
  };
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
