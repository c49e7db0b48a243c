/**
 * gRPC message framing done by hand for the data path: a length-prefixed
 * message reader that hands out views of the received chunks (no copy when a
 * message arrives in one chunk), and an encoder that sends large `bytes`
 * fields by reference instead of copying them into the encoded message
 * (PERFORMANCE.md: a batch is mostly one large payload).
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";

/** Bytes fields at least this long are appended by reference. */
const byReferenceBytes = 16 * 1024;

/** Why a frame could not be read. */
export type FrameError = { kind: "too-large"; length: number } | { kind: "compressed" };

/** Reassembles gRPC length-prefixed messages from the chunks of an HTTP/2 stream. */
export class GrpcFrameReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Length of the message being read, once its prefix is complete. */
  #length = -1;

  constructor(private readonly maxMessageBytes: number) {}

  /** Adds a chunk; returns the messages it completed, or the first framing error. */
  push(chunk: Buffer): Uint8Array[] | FrameError {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const messages: Uint8Array[] = [];
    for (;;) {
      if (this.#length < 0) {
        if (this.#buffered < 5) return messages;
        const prefix = this.#take(5);
        if (prefix[0]! & 1) return { kind: "compressed" };
        this.#length = prefix.readUInt32BE(1);
        if (this.#length > this.maxMessageBytes) return { kind: "too-large", length: this.#length };
      }
      if (this.#buffered < this.#length) return messages;
      // A plain Uint8Array view, as protobuf decoders hand out bytes fields (not a Buffer).
      const message = this.#take(this.#length);
      messages.push(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
      this.#length = -1;
    }
  }

  /** True when bytes of an unfinished message are held (the stream ended mid-message). */
  get partial(): boolean {
    return this.#buffered > 0 || this.#length >= 0;
  }

  /** The next `n` buffered bytes: a view when they lie in one chunk, else one copy. */
  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    return out;
  }
}

/** The 5-byte prefix of an uncompressed gRPC message of `length` bytes. */
export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(5);
  header[0] = 0;
  header.writeUInt32BE(length, 1);
  return header;
}

/**
 * Encodes `message` as gRPC frame parts: the prefix, the message without its
 * large top-level bytes fields, then each such field's tag, length and the
 * caller's own bytes. Decoders see the same message (field order is free in
 * protobuf); the large bytes are never copied.
 */
export function encodeFrameParts<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array[] {
  let rest: Record<string, unknown> | undefined;
  const large: [number, Uint8Array][] = [];
  for (const field of schema.fields) {
    if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.BYTES) continue;
    const holder = (rest ?? message) as Record<string, unknown>;
    const oneof = field.oneof;
    const value = oneof
      ? (holder[oneof.localName] as { case?: string; value?: unknown }).case === field.localName
        ? (holder[oneof.localName] as { value: Uint8Array }).value
        : undefined
      : (holder[field.localName] as Uint8Array | undefined);
    if (!value || value.byteLength < byReferenceBytes) continue;
    rest ??= { ...(message as object) };
    if (oneof) rest[oneof.localName] = { case: undefined };
    else rest[field.localName] = new Uint8Array(0);
    large.push([field.number, value]);
  }
  const head = toBinary(schema, (rest ?? message) as MessageShape<Desc>);
  const parts: Uint8Array[] = [head];
  let length = head.byteLength;
  for (const [number, value] of large) {
    const prefix = Buffer.from([...varint((number << 3) | 2), ...varint(value.byteLength)]);
    parts.push(prefix, value);
    length += prefix.byteLength + value.byteLength;
  }
  parts.unshift(frameHeader(length));
  return parts;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
