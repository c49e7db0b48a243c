/** An unbounded queue read as an async iterable; every wait honours a signal. */
import { abortable } from "./abortable.js";

export class AsyncQueue<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #failure: { error: unknown } | undefined;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  /** Ends iteration after the queued items. */
  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /** Ends iteration at once with `error`. */
  fail(error: unknown): void {
    this.#failure = { error };
    this.#wake?.();
  }

  /** Items queued and not yet read. */
  get length(): number {
    return this.#items.length;
  }

  /** Removes and returns every queued item. */
  takeAll(): T[] {
    return this.#items.splice(0);
  }

  /**
   * Yields items as they come until closed; rejects with the signal's reason
   * on abort (without one, only `fail` ends the wait). With `idleMs`, yields
   * {@link idle} whenever it waited that long for an item (for heartbeats on
   * quiet streams).
   */
  drain(signal?: AbortSignal): AsyncGenerator<T>;
  drain(signal: AbortSignal | undefined, idleMs: number): AsyncGenerator<T | typeof idle>;
  async *drain(signal: AbortSignal | undefined, idleMs?: number): AsyncGenerator<T | typeof idle> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.#failure) throw this.#failure.error;
      if (this.#items.length > 0) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#closed) return;
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      try {
        const woken = new Promise<void>((resolve) => {
          this.#wake = resolve;
          if (idleMs) timer = setTimeout(() => resolve(void (timedOut = true)), idleMs);
        });
        await (signal ? abortable(woken, signal) : woken);
      } finally {
        clearTimeout(timer);
        this.#wake = undefined;
      }
      if (timedOut) yield idle;
    }
  }
}

/** What {@link AsyncQueue.drain} yields after waiting `idleMs` for an item. */
export const idle = Symbol("idle");
