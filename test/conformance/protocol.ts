/**
 * What the conformance programs share: the runner's size-delimited messages
 * on stdin and stdout, and conversions between the suite's Header and Error
 * messages and connect's Headers and ConnectError. Adapted from connect-es's
 * own conformance package (packages/connect-conformance, Apache-2.0).
 */
import { create, createRegistry, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { type Code, ConnectError } from "@connectrpc/connect";
import type { Code as ConformanceCode } from "./gen/connectrpc/conformance/v1/config_pb.js";
import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayload_RequestInfoSchema,
  ErrorSchema,
  HeaderSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  type Error as ConformanceError,
  type Header,
} from "./gen/connectrpc/conformance/v1/service_pb.js";

/** The messages the suite packs in Any: the requests echoed back, and the request info in error details. */
export const conformanceRegistry = createRegistry(
  UnaryRequestSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  ClientStreamRequestSchema,
  BidiStreamRequestSchema,
  ConformancePayload_RequestInfoSchema,
);

/** Reads the runner's messages: each a 4-byte big-endian length, then that many bytes. */
export async function* readSizeDelimited(stream: AsyncIterable<Buffer>): AsyncGenerator<Uint8Array> {
  let buffer: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    while (buffer.length >= 4) {
      const size = buffer.readUInt32BE(0);
      if (buffer.length < 4 + size) break;
      yield new Uint8Array(buffer.subarray(4, 4 + size));
      buffer = buffer.subarray(4 + size);
    }
  }
  if (buffer.length > 0) throw new Error(`stdin ended inside a message (${buffer.length} bytes left)`);
}

/** One message as the runner reads it. */
export function sizeDelimited(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + bytes.byteLength);
  out.writeUInt32BE(bytes.byteLength, 0);
  out.set(bytes, 4);
  return out;
}

/** Appends the suite's headers to `headers` (a header may have several values). */
export function appendHeaders(headers: Headers, from: readonly Header[]): void {
  for (const header of from) for (const value of header.value) headers.append(header.name, value);
}

/** Headers as the suite's Header messages. */
export function toProtoHeaders(headers: Headers): Header[] {
  const out: Header[] = [];
  headers.forEach((value, name) => out.push(create(HeaderSchema, { name, value: [value] })));
  return out;
}

/** The error a response definition asks for, with its details unpacked (connect sends them as messages). */
export function errorFromProto(error: ConformanceError): ConnectError {
  return new ConnectError(
    error.message ?? "",
    error.code as number as Code,
    undefined,
    error.details.map((detail) => {
      const value = anyUnpack(detail, conformanceRegistry);
      if (!value) throw new Error(`cannot unpack an error detail of type ${detail.typeUrl}`);
      const desc = conformanceRegistry.getMessage(value.$typeName)!;
      return { desc, value };
    }),
  );
}

/** A ConnectError as the suite's Error message. */
export function errorToProto(error: ConnectError): ConformanceError {
  const details: Any[] = error.details.map((detail) =>
    "desc" in detail
      ? anyPack(detail.desc, create(detail.desc, detail.value))
      : create(AnySchema, { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value }),
  );
  return create(ErrorSchema, { code: error.code as number as ConformanceCode, message: error.rawMessage, details });
}

/** Unpacks an Any into `desc`, or throws. */
export function unpack<Desc extends DescMessage>(any: Any, desc: Desc): MessageShape<Desc> {
  const message = anyUnpack(any, desc);
  if (!message) throw new Error(`expected a ${desc.typeName}, got ${any.typeUrl}`);
  return message;
}

/** Waits `ms`; with a signal, rejects with its reason once it aborts (a call past its deadline ends, and does not answer late). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    if (ms <= 0) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
