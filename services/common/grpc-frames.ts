/**
 * gRPC message framing done by hand for the data path: a length-prefixed
 * message reader that hands out views of the received chunks (no copy when a
 * message arrives in one chunk), and an encoder that sends large `bytes`
 * fields by reference instead of copying them into the encoded message
 * (a batch is mostly one large payload).
 */
import { create, fromBinary, ScalarType, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ByteParts, contiguous } from "./byte-parts.js";

/** Bytes fields at least this long are appended by reference. */
const byReferenceBytes = 16 * 1024;

/** Why a frame could not be read. */
export type FrameError = { kind: "too-large"; length: number } | { kind: "compressed" };

/**
 * Reads gRPC length-prefixed messages from the chunks of an HTTP/2 stream;
 * each message is the list of chunk views it spans (see {@link contiguous}).
 */
export class GrpcFrameReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Length of the message being read, once its prefix is complete. */
  #length = -1;

  constructor(private readonly maxMessageBytes: number) {}

  /** Adds a chunk; returns the messages it completed, or the first framing error. */
  push(chunk: Buffer): Uint8Array[][] | FrameError {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const messages: Uint8Array[][] = [];
    for (;;) {
      if (this.#length < 0) {
        if (this.#buffered < 5) return messages;
        const prefix = Buffer.from(contiguous(this.#take(5)));
        if (prefix[0]! & 1) return { kind: "compressed" };
        this.#length = prefix.readUInt32BE(1);
        if (this.#length > this.maxMessageBytes) return { kind: "too-large", length: this.#length };
      }
      if (this.#buffered < this.#length) return messages;
      messages.push(this.#take(this.#length));
      this.#length = -1;
    }
  }

  /** True when bytes of an unfinished message are held (the stream ended mid-message). */
  get partial(): boolean {
    return this.#buffered > 0 || this.#length >= 0;
  }

  /** The next `n` buffered bytes, as plain Uint8Array views of the chunks (as protobuf hands out bytes, not Buffers). */
  #take(n: number): Uint8Array[] {
    this.#buffered -= n;
    const parts: Uint8Array[] = [];
    while (n > 0) {
      const chunk = this.#chunks[0]!;
      const used = Math.min(chunk.length, n);
      parts.push(new Uint8Array(chunk.buffer, chunk.byteOffset, used));
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
      n -= used;
    }
    return parts.length ? parts : [new Uint8Array(0)];
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
  const large: [number, Uint8Array | ByteParts][] = [];
  for (const field of schema.fields) {
    if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.BYTES) continue;
    const holder = (rest ?? message) as Record<string, unknown>;
    const oneof = field.oneof;
    const value = oneof
      ? (holder[oneof.localName] as { case?: string; value?: unknown }).case === field.localName
        ? (holder[oneof.localName] as { value: Uint8Array | ByteParts }).value
        : undefined
      : (holder[field.localName] as Uint8Array | ByteParts | undefined);
    // ByteParts always go by reference: the generated encoder cannot write them.
    if (!value || (!(value instanceof ByteParts) && value.byteLength < byReferenceBytes)) continue;
    rest ??= { ...(message as object) };
    if (oneof) rest[oneof.localName] = { case: undefined };
    else rest[field.localName] = new Uint8Array(0);
    large.push([field.number, value]);
  }
  const head = toBinary(schema, (rest ?? message) as MessageShape<Desc>);
  const parts: Uint8Array[] = [head];
  let length = head.byteLength;
  for (const [number, value] of large) {
    const prefix = bytesFieldPrefix(number, value.byteLength);
    if (value instanceof ByteParts) parts.push(prefix, ...value.parts);
    else parts.push(prefix, value);
    length += prefix.byteLength + value.byteLength;
  }
  parts.unshift(frameHeader(length));
  return parts;
}

/**
 * Decodes a message from its parts. A message that is one large bytes field
 * (a Publish batch) keeps that field's bytes where they arrived, as
 * {@link ByteParts}; anything else is decoded from one contiguous buffer.
 */
export function decodeFrame<Desc extends DescMessage>(schema: Desc, parts: readonly Uint8Array[]): MessageShape<Desc> {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  if (parts.length > 1 && total >= byReferenceBytes) {
    const whole = asOneBytesField(schema, parts, total);
    if (whole) return whole;
  }
  return fromBinary(schema, contiguous(parts));
}

/** The message, if its parts hold just one top-level `bytes` field; its bytes stay where they are. */
function asOneBytesField<Desc extends DescMessage>(schema: Desc, parts: readonly Uint8Array[], total: number): MessageShape<Desc> | undefined {
  let number: number;
  let start: number;
  let length: number;
  try {
    // A tag and a length take at most 10 bytes.
    const head = new BinaryReader(contiguous(sliceParts(parts, 0, Math.min(total, 16))));
    const [fieldNumber, wireType] = head.tag();
    if (wireType !== WireType.LengthDelimited) return undefined;
    number = fieldNumber;
    length = head.uint32();
    start = head.pos;
  } catch {
    return undefined; // not that shape: the full decoder reports what is wrong
  }
  const field = schema.fields.find((f) => f.number === number);
  if (field?.fieldKind !== "scalar" || field.scalar !== ScalarType.BYTES || start + length !== total) return undefined;
  const value = new ByteParts(sliceParts(parts, start, total));
  const init = field.oneof ? { [field.oneof.localName]: { case: field.localName, value } } : { [field.localName]: value };
  return create(schema, init as never);
}

/** Views of bytes `from` to `to` of the parts taken together. */
function sliceParts(parts: readonly Uint8Array[], from: number, to: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of parts) {
    const start = Math.max(from, at);
    const end = Math.min(to, at + p.byteLength);
    if (start < end) out.push(p.subarray(start - at, end - at));
    at += p.byteLength;
  }
  return out;
}

/** The tag and length that precede a `bytes` field of `length` bytes. */
export function bytesFieldPrefix(number: number, length: number): Uint8Array {
  return new BinaryWriter().tag(number, WireType.LengthDelimited).uint32(length).finish();
}
