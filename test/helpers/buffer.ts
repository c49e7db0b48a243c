/** Producers and consumers of a real buffer, for tests: batches with known contents, publishing, consuming with acks. */
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  type BufferService,
  type PublishRequestSchema,
  SubscribeRequestSchema,
  SubscribeResponseSchema,
  type SubscribeResponse,
} from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { contiguous } from "../../services/common/byte-parts.js";
import { frameHeader, GrpcFrameReader } from "../../services/common/grpc-frames.js";
import type { CertMaterial } from "../../services/common/pki.js";
import { EventBatchSchema, PayloadFormat, type EventBatch, type StreamTotals } from "../../gen/lclstream/data/v1/data_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

/** A batch of `events` events whose payload is `payloadBytes` bytes of a pattern from (rank, seq). */
export function makeBatch(stream: string, rank: number, seq: number, events = 4, payloadBytes = 1024): EventBatch {
  const data = new Uint8Array(payloadBytes);
  for (let i = 0; i < payloadBytes; i++) data[i] = (rank * 31 + seq * 7 + i) & 0xff;
  return create(EventBatchSchema, {
    stream,
    producerRank: rank,
    seq: BigInt(seq),
    eventIndices: Array.from({ length: events }, (_, i) => BigInt(seq * events + i)),
    payload: { case: "serialized", value: { format: PayloadFormat.HDF5, data } },
  });
}

type PublishMessage = MessageInitShape<typeof PublishRequestSchema>;

/** Publish messages: open, the batches `from` to `to` (exclusive) of `rank`, then done when asked. */
export async function* publishMessages(
  stream: string,
  token: string,
  rank: number,
  from: number,
  to: number,
  options: { done?: boolean; events?: number; payloadBytes?: number; totalBatches?: number } = {},
): AsyncGenerator<PublishMessage> {
  const events = options.events ?? 4;
  yield { kind: { case: "open", value: { stream, producerRank: rank, publishToken: token } } };
  for (let seq = from; seq < to; seq++) yield { kind: { case: "batch", value: makeBatch(stream, rank, seq, events, options.payloadBytes) } };
  if (options.done) {
    const batches = options.totalBatches ?? to;
    yield { kind: { case: "done", value: { batchCount: BigInt(batches), eventCount: BigInt(batches * events) } } };
  }
}

/** What a consumer received. */
export interface Consumed {
  consumerId: string;
  seqs: number[];
  redeliveries: number[];
  batches: EventBatch[];
  end?: StreamTotals;
}

/**
 * Subscribes and reads until the end of stream (or `stopAfter` batches, or
 * the signal), acknowledging each batch when `ack` is set.
 */
export async function consume(
  client: Client<typeof BufferService>,
  stream: string,
  group: string,
  options: {
    ack?: boolean;
    maxInFlight?: number;
    stopAfter?: number;
    signal?: AbortSignal;
    startSeq?: number;
    onBatch?: (r: SubscribeResponse) => Promise<void> | void;
  } = {},
): Promise<Consumed> {
  const out: Consumed = { consumerId: "", seqs: [], redeliveries: [], batches: [] };
  const calls = client.subscribe(
    { stream, consumerGroup: group, maxInFlight: options.maxInFlight ?? 0, startSeq: BigInt(options.startSeq ?? 0) },
    { signal: options.signal },
  );
  for await (const r of calls) {
    if (r.kind.case === "started") out.consumerId = r.kind.value.consumerId;
    else if (r.kind.case === "batch") {
      const seq = Number(r.seq);
      out.seqs.push(seq);
      out.batches.push(r.kind.value);
      if (r.redelivery) out.redeliveries.push(seq);
      await options.onBatch?.(r);
      if (options.ack !== false) await client.ack({ stream, consumerGroup: group, consumerId: out.consumerId, seqs: [r.seq] });
      if (options.stopAfter && out.seqs.length >= options.stopAfter) return out;
    } else if (r.kind.case === "endOfStream") {
      out.end = r.kind.value;
    }
  }
  return out;
}

/**
 * A Subscribe on a bare HTTP/2 session, whose windows stay at HTTP/2's 64 KiB:
 * for tests of what the server sends a reader that stops. Resolves once the
 * response headers came; close `session` when done.
 */
export async function bareSubscribe(url: string, tls: CertMaterial, stream: string, consumerGroup: string) {
  const session = http2.connect(url, { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem });
  const call = session.request({
    ":method": "POST",
    ":path": "/lclstream.buffer.v1.BufferService/Subscribe",
    "content-type": "application/grpc",
    te: "trailers",
  });
  const request = toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { stream, consumerGroup }));
  call.end(Buffer.concat([frameHeader(request.byteLength), request]));
  await new Promise((resolve) => call.once("response", resolve));
  return { session, call };
}

/** Calls `onResponse` with each message a bare Subscribe `call` receives, decoded. */
export function onResponses(call: http2.ClientHttp2Stream, onResponse: (r: SubscribeResponse) => void): void {
  const reader = new GrpcFrameReader(1 << 20);
  call.on("data", (chunk: Buffer) => {
    for (const parts of reader.push(chunk) as Uint8Array[][]) onResponse(fromBinary(SubscribeResponseSchema, contiguous(parts)));
  });
}
