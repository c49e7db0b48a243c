/** An unbounded queue read as an async iterable; every wait honours a signal. */
import { abortable } from "./health.js";

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

  /** True while a reader waits for the next item (it has read everything). */
  get waiting(): boolean {
    return this.#wake !== undefined;
  }

  /** Removes and returns every queued item. */
  takeAll(): T[] {
    return this.#items.splice(0);
  }

  /** Yields items as they come until closed; rejects with the signal's reason on abort. */
  async *drain(signal: AbortSignal): AsyncGenerator<T> {
    for (;;) {
      signal.throwIfAborted();
      if (this.#failure) throw this.#failure.error;
      if (this.#items.length > 0) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#closed) return;
      try {
        await abortable(new Promise<void>((resolve) => (this.#wake = resolve)), signal);
      } finally {
        this.#wake = undefined;
      }
    }
  }
}
