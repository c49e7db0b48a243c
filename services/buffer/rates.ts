/**
 * Recent rates (bytes per second) of publishing per stream and delivering
 * per group, sampled once a second: what GetStream reports as
 * publish_bytes_per_second and deliver_bytes_per_second.
 */
interface Meter {
  total: number;
  sampled: number;
  rate: number;
}

const newMeter = (): Meter => ({ total: 0, sampled: 0, rate: 0 });

export class RateMeters {
  readonly #published = new Map<string, Meter>();
  readonly #delivered = new Map<string, Map<string, Meter>>();
  readonly #timer: NodeJS.Timeout;
  #lastSample = performance.now();

  constructor(intervalMs = 1000) {
    this.#timer = setInterval(() => this.#sample(), intervalMs);
    this.#timer.unref();
  }

  published(stream: string, bytes: number): void {
    let m = this.#published.get(stream);
    if (!m) this.#published.set(stream, (m = newMeter()));
    m.total += bytes;
  }

  delivered(stream: string, group: string, bytes: number): void {
    let groups = this.#delivered.get(stream);
    if (!groups) this.#delivered.set(stream, (groups = new Map()));
    let m = groups.get(group);
    if (!m) groups.set(group, (m = newMeter()));
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

  #sample() {
    const now = performance.now();
    const seconds = (now - this.#lastSample) / 1000;
    this.#lastSample = now;
    const update = (m: Meter) => {
      m.rate = (m.total - m.sampled) / seconds;
      m.sampled = m.total;
    };
    this.#published.forEach(update);
    this.#delivered.forEach((groups) => groups.forEach(update));
  }
}
