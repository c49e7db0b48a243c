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

  constructor(readonly parts: readonly Uint8Array[]) {
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
