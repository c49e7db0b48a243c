/**
 * The data path's "wire view" of BufferService: the same service, methods
 * and field numbers, but with every EventBatch field typed as `bytes`. An
 * embedded message and a bytes field are identical on the wire, so clients
 * see no difference; the buffer never decodes a batch's payload, keeps the
 * bytes a producer sent, and sends those same bytes to every subscriber
 * (encode once, never per consumer).
 *
 * Derived at runtime from the public descriptor, so it cannot drift from the
 * API; reflection keeps describing the public one.
 */
import { clone, createFileRegistry, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { contiguous, type ByteParts } from "../common/byte-parts.js";
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema, file_google_protobuf_timestamp } from "@bufbuild/protobuf/wkt";
import { BufferService, file_lclstream_buffer_v1_buffer } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { EventBatchSchema, file_lclstream_data_v1_data } from "../../gen/lclstream/data/v1/data_pb.js";

/** Rewrites every field of type EventBatch in `file` to bytes. */
function batchesAsBytes() {
  const proto = clone(FileDescriptorProtoSchema, file_lclstream_buffer_v1_buffer.proto);
  for (const message of proto.messageType) {
    for (const field of message.field) {
      if (field.typeName === `.${EventBatchSchema.typeName}`) {
        field.type = FieldDescriptorProto_Type.BYTES;
        field.typeName = "";
      }
    }
  }
  const imports = [file_google_protobuf_timestamp, file_lclstream_data_v1_data];
  return createFileRegistry(proto, (name) => imports.find((f) => f.proto.name === name));
}

const registry = batchesAsBytes();

function service(typeName: string): DescService {
  const s = registry.getService(typeName);
  if (!s) throw new Error(`${typeName} is missing from the wire view`);
  return s;
}

function message(typeName: string): DescMessage {
  const m = registry.getMessage(typeName);
  if (!m) throw new Error(`${typeName} is missing from the wire view`);
  return m;
}

/** BufferService with batches as bytes: what the buffer's router serves. */
export const WireBufferService = service(BufferService.typeName) as DescService;
/** PublishRequest with `batch` as bytes. */
export const WirePublishRequestSchema = message("lclstream.buffer.v1.PublishRequest");
/** SubscribeResponse with `batch` as bytes. */
export const WireSubscribeResponseSchema = message("lclstream.buffer.v1.SubscribeResponse");

/** The fields of an encoded EventBatch the buffer needs, read without decoding the payload. */
export interface BatchHeader {
  producerRank: number;
  seq: bigint;
  eventCount: number;
}

/**
 * Header fields come first in every encoder we know of: a batch's first
 * bytes are read for them (its first chunk, as a view, usually holds them),
 * then more, then all of it.
 */
const headSizes = [4 * 1024, 64 * 1024];

/**
 * Reads producer_rank, seq and the number of event indices of an encoded
 * EventBatch, skipping everything else (the payload is never copied): from
 * the batch's first bytes, or all of it when a field runs past them.
 */
export function readBatchHeader(batch: ByteParts): BatchHeader {
  for (const size of headSizes) {
    if (batch.byteLength <= size) break;
    try {
      return readHeaderFrom(contiguous(takeHead(batch.parts, size)), batch.byteLength);
    } catch {
      // A field longer than the head (or fields in an unusual order): read more.
    }
  }
  return readHeaderFrom(batch.contiguous(), batch.byteLength);
}

/** The first parts holding at least `n` bytes. */
function takeHead(parts: readonly Uint8Array[], n: number): Uint8Array[] {
  const head: Uint8Array[] = [];
  let length = 0;
  for (const p of parts) {
    if (length >= n) break;
    head.push(p);
    length += p.byteLength;
  }
  return head;
}

/**
 * The header fields of an encoded batch of `total` bytes, of which `bytes`
 * may be only the beginning: then reading stops at the payload when it runs
 * to the end of the batch, and throws when anything does not fit.
 */
function readHeaderFrom(bytes: Uint8Array, total: number): BatchHeader {
  const partial = bytes.byteLength < total;
  const reader = new BinaryReader(bytes);
  const header: BatchHeader = { producerRank: 0, seq: 0n, eventCount: 0 };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 2 && wireType === WireType.Varint) header.producerRank = reader.uint32();
    else if (field === 3 && wireType === WireType.Varint) header.seq = reader.uint64() as bigint;
    else if (field === 4 && wireType === WireType.LengthDelimited) {
      // Packed event_indices: count the varints (bytes without the continuation bit).
      const packed = reader.bytes();
      for (const b of packed) if (b < 0x80) header.eventCount++;
    } else if (field === 4 && wireType === WireType.Varint) {
      reader.uint64();
      header.eventCount++;
    } else if (partial && (field === 6 || field === 7) && wireType === WireType.LengthDelimited) {
      // The payload, last as encoders write it; anything after it means reading the whole batch.
      const length = reader.uint32();
      if (reader.pos + length !== total) throw new Error("fields after the payload");
      return header;
    } else reader.skip(wireType, field);
  }
  return header;
}
