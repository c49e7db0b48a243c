/**
 * A message's bytes as the chunks they arrived in: what a batch is from the
 * moment it is read off a socket until it is written to every subscriber, so
 * that nothing on the way copies it. The framing (grpc-frames.ts), the
 * buffer's streams and its segment log all share this one type.
 */
/**
 * The bytes of a large field as they arrived: views of the received chunks,
 * never copied into one buffer. Messages the data path decodes carry one in
 * place of a `Uint8Array` when they are a single large bytes field, and its
 * encoder sends one as it is.
 */
export class ByteParts {
  readonly byteLength: number;

  /**
   * @param onSent called once by a wire that sent these bytes and no longer
   * reads them (a lent copy, see {@link Lease}); a wire that cannot tell
   * never calls it.
   */
  constructor(
    readonly parts: readonly Uint8Array[],
    readonly onSent?: () => void,
  ) {
    this.byteLength = parts.reduce((n, p) => n + p.byteLength, 0);
  }

  /** One contiguous copy (a view when there is one part), for code that needs it. */
  contiguous(): Uint8Array {
    return contiguous(this.parts);
  }
}

/** The parts as one buffer: the part itself when there is one, else a copy. */
export function contiguous(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  // Every byte is written below, so the memory is not zeroed first: zeroing 1 MiB costs about a third of copying it.
  const memory = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.byteLength, 0));
  const out = new Uint8Array(memory.buffer, memory.byteOffset, memory.byteLength);
  copyParts(parts, out);
  return out;
}

/** Copies the parts one after another to the start of `out`, which must hold them. */
export function copyParts(parts: readonly Uint8Array[], out: Uint8Array): void {
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
}

/** How V8 counts a message's memory: taken off its count while a lease's first holder keeps it, and back on after. */
export interface Counting {
  hold(): void;
  unhold(): void;
}

/** Memory that can be given back before V8 collects it: each received message's, on the native module's data path. */
const releasers = new WeakMap<ArrayBuffer, Releaser>();
interface Releaser {
  release: () => void;
  counting?: Counting;
}

/**
 * Marks `buffer` as given back by `release` once every holder of a
 * {@link Lease} over it is done; with `counting`, V8 does not count the
 * memory while the lease's first holder keeps it (see stream-call.cc).
 */
export function releasable(buffer: ArrayBuffer, release: () => void, counting?: Counting): void {
  releasers.set(buffer, { release, counting });
}

/**
 * Who still reads a message's memory: its first holder, and every wire it is
 * lent to until that wire has sent it. The memory is given back when the last
 * is done. A holder that never says so (a call that broke mid-send, a path
 * that cannot tell) only leaves the memory to the collector, as before: so
 * V8 counts it again once the first holder is done, while wires still hold it.
 */
export class Lease {
  #holders = 1;
  readonly #releaser: Releaser;
  #held: boolean;
  private constructor(releaser: Releaser) {
    this.#releaser = releaser;
    this.#held = releaser.counting !== undefined;
  }

  /** A lease over `bytes`' memory, held by the caller; undefined unless all of it is in one releasable buffer. */
  static of(bytes: ByteParts): Lease | undefined {
    const buffer = bytes.parts[0]?.buffer;
    if (!(buffer instanceof ArrayBuffer) || bytes.parts.some((p) => p.buffer !== buffer)) return undefined;
    const releaser = releasers.get(buffer);
    if (!releaser) return undefined;
    releasers.delete(buffer);
    releaser.counting?.hold();
    return new Lease(releaser);
  }

  /** The same bytes for one more holder, a wire, to give back with `onSent`. */
  lend(bytes: ByteParts): ByteParts {
    this.#holders++;
    let given = false;
    return new ByteParts(bytes.parts, () => {
      if (given) return;
      given = true;
      this.end();
    });
  }

  /** The first holder is done: what wires still hold is counted by V8 again, since one may never say it is done. */
  endFirst(): void {
    this.#counted();
    this.end();
  }

  /** One holder is done. */
  end(): void {
    if (--this.#holders > 0) return;
    this.#counted();
    this.#releaser.release();
  }

  #counted() {
    if (!this.#held) return;
    this.#held = false;
    this.#releaser.counting!.unhold();
  }
}
