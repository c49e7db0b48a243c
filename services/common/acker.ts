/**
 * A consumer's window as its subscription's first message gives it: the
 * batches, and the bytes of them, it may hold unacknowledged (bytes 0: no
 * byte limit). A buffer from before byte windows sends neither.
 */
export interface AckWindow {
  maxInFlight: number;
  maxInFlightBytes: bigint;
}

/** What a consumer acknowledges by when the buffer names no window: its old default of 16 batches. */
const windowOfOlderBuffers: AckWindow = { maxInFlight: 16, maxInFlightBytes: 0n };

/**
 * The consumer's side of acknowledgements: delivered seqs go back to the
 * buffer in groups, without holding up the consumer. A group goes when it
 * holds half the consumer's window, in batches or in bytes (so the buffer
 * never waits on an Ack to send more, and a stream of small batches makes few
 * Ack calls: each costs the buffer a call's worth of work), or `intervalMs`
 * after its first seq; one Ack call at a time. `flush` sends the rest and
 * waits (before the end of a stream). A failed Ack in the background loses
 * nothing (the buffer redelivers what it did not hear of, and the consumer
 * acknowledges it again); only `flush` reports its own failure.
 */
export class Acker {
  #pending: bigint[] = [];
  #pendingBytes = 0;
  #inFlight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #groupSize = 1;
  #groupBytes = Number.POSITIVE_INFINITY;

  constructor(
    private readonly send: (seqs: bigint[]) => Promise<unknown>,
    private readonly options: { intervalMs: number },
  ) {
    this.useWindow(undefined);
  }

  /** Acknowledges in groups of half `window`: call it with the subscription's started message. */
  useWindow(window: AckWindow | undefined): void {
    const w = window?.maxInFlight ? window : windowOfOlderBuffers;
    this.#groupSize = Math.max(1, Math.floor(w.maxInFlight / 2));
    this.#groupBytes = w.maxInFlightBytes > 0n ? Number(w.maxInFlightBytes) / 2 : Number.POSITIVE_INFINITY;
  }

  /** Queues the acknowledgement of `seq`, a batch of `bytes` (its payload: what the consumer can count). */
  add(seq: bigint, bytes = 0): void {
    this.#pending.push(seq);
    this.#pendingBytes += bytes;
    this.#schedule();
  }

  /** Sends everything queued and waits for it. */
  async flush(): Promise<void> {
    while (this.#inFlight || this.#pending.length) {
      if (this.#inFlight) await this.#inFlight;
      else await this.#sendPending();
    }
  }

  /** Stops the timer; what is still queued is not sent. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#inFlight || !this.#pending.length) return;
    if (this.#pending.length >= this.#groupSize || this.#pendingBytes >= this.#groupBytes) void this.#sendPending().catch(() => undefined);
    else this.#timer ??= setTimeout(() => void this.#sendPending().catch(() => undefined), this.options.intervalMs);
  }

  #sendPending(): Promise<void> {
    this.close();
    const seqs = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    const call = this.send(seqs).then(() => undefined);
    this.#inFlight = call
      .catch(() => undefined)
      .finally(() => {
        this.#inFlight = undefined;
        this.#schedule(); // what came in while this call was out
      });
    return call;
  }
}
