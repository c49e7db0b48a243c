/**
 * Recent rates (bytes per second) of publishing per stream and delivering
 * per group: what GetStream reports as publish_bytes_per_second and
 * deliver_bytes_per_second. Sampled once a second and averaged over a
 * sliding window (5 s), so that a stream of large batches, a few a second,
 * never reads 0 between two of them while bytes move.
 */
interface Meter {
  total: number;
  /** (time in ms, total) at each sample, oldest first, spanning the window. */
  samples: { at: number; total: number }[];
  rate: number;
}

export class RateMeters {
  readonly #published = new Map<string, Meter>();
  readonly #delivered = new Map<string, Map<string, Meter>>();
  readonly #timer: NodeJS.Timeout;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(options: { intervalMs?: number; windowMs?: number; now?: () => number } = {}) {
    this.#windowMs = options.windowMs ?? 5000;
    this.#now = options.now ?? (() => performance.now());
    this.#timer = setInterval(() => this.sample(), options.intervalMs ?? 1000);
    this.#timer.unref();
  }

  #meter(): Meter {
    return { total: 0, samples: [{ at: this.#now(), total: 0 }], rate: 0 };
  }

  published(stream: string, bytes: number): void {
    let m = this.#published.get(stream);
    if (!m) this.#published.set(stream, (m = this.#meter()));
    m.total += bytes;
  }

  delivered(stream: string, group: string, bytes: number): void {
    let groups = this.#delivered.get(stream);
    if (!groups) this.#delivered.set(stream, (groups = new Map()));
    let m = groups.get(group);
    if (!m) groups.set(group, (m = this.#meter()));
    m.total += bytes;
  }

  /** The latest rates of a stream and its groups. */
  get(stream: string): { publish: number; groups: Map<string, number> } {
    const groups = new Map([...(this.#delivered.get(stream) ?? new Map<string, Meter>())].map(([g, m]) => [g, m.rate]));
    return { publish: this.#published.get(stream)?.rate ?? 0, groups };
  }

  forget(stream: string): void {
    this.#published.delete(stream);
    this.#delivered.delete(stream);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /** Takes a sample of every meter (the timer does, once a second). */
  sample(): void {
    const now = this.#now();
    const update = (m: Meter) => {
      m.samples.push({ at: now, total: m.total });
      // Keep the newest sample at or before the window's start, so the window is always spanned.
      while (m.samples.length > 2 && m.samples[1]!.at <= now - this.#windowMs) m.samples.shift();
      const first = m.samples[0]!;
      m.rate = now > first.at ? ((m.total - first.total) * 1000) / (now - first.at) : 0;
    };
    this.#published.forEach(update);
    this.#delivered.forEach((groups) => groups.forEach(update));
  }
}
