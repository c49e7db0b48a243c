/** Producers and consumers of a real buffer, for tests: batches with known contents, publishing, consuming with acks. */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { BufferService, PublishRequestSchema, SubscribeResponse } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
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
