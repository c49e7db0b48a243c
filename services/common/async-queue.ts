/** An unbounded queue read as an async iterable; every wait honours a signal. */
import { abortable } from "./health.js";

export class AsyncQueue<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  /** Ends iteration after the queued items. */
  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /** Yields items as they come until closed; rejects with the signal's reason on abort. */
  async *drain(signal: AbortSignal): AsyncGenerator<T> {
    for (;;) {
      signal.throwIfAborted();
      if (this.#items.length > 0) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#closed) return;
      await abortable(new Promise<void>((resolve) => (this.#wake = resolve)), signal);
      this.#wake = undefined;
    }
  }
}
