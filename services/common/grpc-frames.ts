/**
 * gRPC message framing done by hand for the data path: a length-prefixed
 * message reader that hands out views of the received chunks (no copy when a
 * message arrives in one chunk), and an encoder that sends large `bytes`
 * fields by reference instead of copying them into the encoded message
 * (a batch is mostly one large payload).
 */
import { create, fromBinary, ScalarType, toBinary, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ByteParts, contiguous } from "./byte-parts.js";

/** Bytes fields at least this long are appended by reference. */
const byReferenceBytes = 16 * 1024;

/**
 * Bytes a gRPC stream may hold unsent before its writer waits for "drain".
 * Node's HTTP/2 streams call themselves full past 16 KiB, so waiting whenever
 * write() says so costs an event-loop turn per message, which a busy machine
 * stretches: the contended 64 KiB relay carried 83-94 MB/s that way, 128-132
 * with this (bench/README.md). What waits is the messages' own memory, which
 * their sender holds until they are confirmed anyway.
 */
export const writeAheadBytes = 4 * 1024 * 1024;

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
 * Encodes `message` as gRPC frame parts: the prefix, then the message as
 * {@link encodeParts} writes it.
 */
export function encodeFrameParts<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, sent?: (() => void)[]): Uint8Array[] {
  const parts = encodeParts(schema, message, sent);
  return [frameHeader(parts.reduce((n, p) => n + p.byteLength, 0)), ...parts];
}

/**
 * Encodes `message` as parts: the generated encoder writes everything but
 * its large `bytes` fields, and each of those, at any depth (message fields,
 * oneofs, string-keyed map values: a batch's column arrays), follows as its
 * tag, length and the caller's own bytes, with the tags and lengths of the
 * messages around it. Decoders see the same message (field order is free in
 * protobuf); the large bytes are never copied. The `onSent` of each
 * ByteParts goes into `sent`, for the wire to call once it has sent them.
 */
export function encodeParts<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, sent?: (() => void)[]): Uint8Array[] {
  const m = message as Record<string, unknown>;
  let rest: Record<string, unknown> | undefined;
  const tail: Uint8Array[] = [];
  /** Leaves the field out of what the generated encoder writes. */
  const takeOut = (field: DescField, empty: unknown) => {
    rest ??= { ...m };
    if (field.oneof) rest[field.oneof.localName] = { case: undefined };
    else rest[field.localName] = empty;
  };
  /** A length-delimited field of `parts`. */
  const append = (number: number, parts: Uint8Array[]) => tail.push(bytesFieldPrefix(number, lengthOf(parts)), ...parts);
  for (const field of schema.fields) {
    const holder = field.oneof ? (m[field.oneof.localName] as { case?: string; value?: unknown }) : undefined;
    const value = holder ? (holder.case === field.localName ? holder.value : undefined) : m[field.localName];
    if (value === undefined || value === null) continue;
    if (field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES) {
      // ByteParts always go by reference: the generated encoder cannot write them.
      if (!(value instanceof ByteParts) && (value as Uint8Array).byteLength < byReferenceBytes) continue;
      takeOut(field, new Uint8Array(0));
      append(field.number, value instanceof ByteParts ? [...value.parts] : [value as Uint8Array]);
      if (value instanceof ByteParts && value.onSent) sent?.push(value.onSent);
    } else if (field.fieldKind === "message") {
      const inner = encodeParts(field.message, value as never, sent);
      if (inner.length === 1) continue; // nothing large inside
      takeOut(field, undefined);
      append(field.number, inner);
    } else if (field.fieldKind === "map" && field.mapKind === "message" && field.mapKey === ScalarType.STRING) {
      let kept: Record<string, unknown> | undefined;
      for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
        const inner = encodeParts(field.message, entry as never, sent);
        if (inner.length === 1) continue;
        kept ??= { ...(value as Record<string, unknown>) };
        delete kept[key];
        // A map entry is a message of key (1) and value (2).
        const keyPart = new BinaryWriter().tag(1, WireType.LengthDelimited).string(key).finish();
        append(field.number, [keyPart, bytesFieldPrefix(2, lengthOf(inner)), ...inner]);
      }
      if (kept) takeOut(field, kept);
    }
  }
  return [toBinary(schema, (rest ?? m) as MessageShape<Desc>), ...tail];
}

const lengthOf = (parts: readonly Uint8Array[]) => parts.reduce((n, p) => n + p.byteLength, 0);

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
