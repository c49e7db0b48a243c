/**
 * BufferService on the wire view (batches as bytes, see wire.ts): stream
 * management with ownership, Publish guarded by the stream's token, Subscribe
 * and Ack for the owner and its readers.
 */
import { randomBytes } from "node:crypto";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type BufferService,
  DeliveryMode,
  type PublishResponseSchema,
  type SubscribeResponseSchema,
  StreamSchema,
  Stream_State,
  type AckRequest,
  type CreateStreamRequest,
  type DeleteStreamRequest,
  type GetStreamRequest,
  type ListStreamsRequest,
  type PublishDone,
  type PublishOpen,
  type Stream,
  type SubscribeRequest,
} from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { idle } from "../common/async-queue.js";
import { routineCall } from "../common/interceptors.js";
import { writeAheadKey } from "../common/direct-grpc.js";
import { defaultConsumerGroup } from "../common/data-path.js";
import type { ByteParts } from "../common/byte-parts.js";
import { invalidArgument, rpcError, type FieldViolation } from "../common/errors.js";
import { resolveIdentity, type Identity } from "../common/identity.js";
import { pageOf, readPage } from "../common/paging.js";
import { callerOf } from "../common/peer.js";
import type { Policy } from "../common/policy.js";
import { bufferDomain, type BufferStream, type StreamState } from "./buffer-stream.js";
import type { RateMeters } from "./rates.js";
import type { StreamEntry, Streams } from "./streams.js";
import { readBatchHeader } from "./wire.js";

const MiB = 1024 * 1024;
/** A consumer's byte window, at most 1 TiB: far past any buffer's capacity, and exact as a JavaScript number. */
const maxWindowBytes = 1n << 40n;
const maxWindowBytesText = "at most 1 TiB (1099511627776); 0 for the default";

/** PublishRequest with its batch as the bytes it arrived in (the edges of server.ts make them ByteParts). */
export type WirePublishRequest = {
  kind:
    | { case: "open"; value: PublishOpen }
    | { case: "batch"; value: ByteParts }
    | { case: "done"; value: PublishDone }
    | { case: undefined; value?: undefined };
};

type SubscribeResponseInit = MessageInitShape<typeof SubscribeResponseSchema>;

/** SubscribeResponse with its batch as the bytes the buffer holds. */
export type WireSubscribeResponse = Omit<SubscribeResponseInit, "kind"> & {
  kind: Exclude<SubscribeResponseInit["kind"], { case: "batch" } | undefined> | { case: "batch"; value: ByteParts };
};

/**
 * BufferService as the buffer implements it: every method of buffer.proto,
 * checked by the compiler, with batches as ByteParts where they travel.
 */
export type BufferImplementation = Omit<ServiceImpl<typeof BufferService>, "publish" | "subscribe"> & {
  publish(requests: AsyncIterable<WirePublishRequest>, ctx: HandlerContext): Promise<MessageInitShape<typeof PublishResponseSchema>>;
  subscribe(request: SubscribeRequest, ctx: HandlerContext): AsyncIterable<WireSubscribeResponse>;
};

export interface BufferServiceDeps {
  streams: Streams;
  policy: Policy;
  rates: RateMeters;
  /** Defaults and limits of stream definitions. */
  limits?: { defaultCapacityBytes?: number; maxProducerCount?: number };
  /** A subscription quiet this long gets a heartbeat, so proxies keep it open; default 15 s. */
  heartbeatMs?: number;
  now?: () => number;
}

const stateToProto: Record<StreamState, Stream_State> = {
  open: Stream_State.OPEN,
  complete: Stream_State.COMPLETE,
  drained: Stream_State.DRAINED,
  lost: Stream_State.LOST,
};

export function createBufferService(deps: BufferServiceDeps): BufferImplementation {
  const { streams, policy, rates } = deps;
  const now = deps.now ?? Date.now;
  const defaultCapacity = deps.limits?.defaultCapacityBytes ?? 256 * MiB;
  const maxProducers = deps.limits?.maxProducerCount ?? 4096;

  function toProto(entry: StreamEntry): MessageInitShape<typeof StreamSchema> {
    const { record, live } = entry;
    const rate = rates.get(record.id);
    const { $typeName: _, ...definition } = record.definition;
    return {
      ...definition,
      name: `streams/${record.id}`,
      owner: record.owner,
      state: stateToProto[live.state],
      stateReason: live.stateReason,
      createTime: timestampFromMs(record.createTime),
      metrics: {
        publishedBatches: BigInt(live.nextSeq - 1),
        publishedEvents: BigInt(live.publishedEvents),
        publishedBytes: BigInt(live.publishedBytes),
        bufferedBatches: BigInt(live.entries.size),
        bufferedBytes: BigInt(live.bufferedBytes),
        publishBytesPerSecond: rate.publish,
        firstBatchTime: live.firstBatchAt === undefined ? undefined : timestampFromMs(live.firstBatchAt),
        producers: live.producers.map((p, slot) => ({
          producerRank: live.rankOf(slot),
          nextSeq: p.nextSeq,
          events: BigInt(p.events),
          done: p.done,
          connected: p.connected > 0,
        })),
        groups: live.groups.map((g) => ({
          group: g.config.name,
          consumers: g.consumers.size,
          deliveredBatches: BigInt(g.counters.deliveredBatches),
          deliveredBytes: BigInt(g.counters.deliveredBytes),
          ackedBatches: BigInt(g.counters.ackedBatches),
          redeliveredBatches: BigInt(g.counters.redeliveredBatches),
          lagBatches: BigInt(g.config.mode === "reliable" ? live.nextSeq - 1 - g.counters.ackedBatches : 0),
          deliverBytesPerSecond: rate.groups.get(g.config.name) ?? 0,
          endOfStreamDelivered: g.endDelivered,
        })),
      },
    };
  }

  const mayRead = (entry: StreamEntry, caller: Identity) =>
    entry.record.owner === caller.uri || entry.record.definition.readers.includes(caller.uri) || policy.isAdmin(caller);

  /** The stream by name, when the caller may read it; otherwise NOT_FOUND, as if it did not exist. */
  function readable(name: string, ctx: HandlerContext, field = "name"): StreamEntry {
    const id = /^streams\/([A-Za-z0-9-]{1,63})$/.exec(name)?.[1];
    if (!id) throw invalidArgument(bufferDomain, [{ field, description: `"${name}" is not a stream name; stream names look like streams/ID` }]);
    const entry = streams.get(id);
    if (!entry || !mayRead(entry, callerOf(ctx))) {
      throw rpcError(Code.NotFound, bufferDomain, "STREAM_NOT_FOUND", `no stream ${name} that you may read`, { metadata: { name } });
    }
    return entry;
  }

  function checkDefinition(req: CreateStreamRequest, caller: Identity): Stream {
    const v: FieldViolation[] = [];
    const s = req.stream;
    if (!s) throw invalidArgument(bufferDomain, [{ field: "stream", description: "is required: the stream to create" }]);
    const definition = create(StreamSchema, {
      readers: [],
      capacityBytes: s.capacityBytes || BigInt(defaultCapacity),
      retentionBytes: s.retentionBytes,
      durable: s.durable,
      producerCount: s.producerCount || 1,
      shardCount: s.shardCount > 1 ? s.shardCount : 0,
      shardIndex: s.shardCount > 1 ? s.shardIndex : 0,
      consumerGroups: s.consumerGroups.length ? s.consumerGroups : [{ name: defaultConsumerGroup }],
      request: s.request,
    });
    if (req.streamId && !/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(req.streamId))
      v.push({ field: "stream_id", description: "letters, digits and -, at most 63 characters" });
    if (definition.capacityBytes < 64n * 1024n) v.push({ field: "stream.capacity_bytes", description: "at least 65536 bytes" });
    if (definition.producerCount > maxProducers) v.push({ field: "stream.producer_count", description: `at most ${maxProducers}` });
    if (definition.shardCount && definition.shardIndex >= definition.shardCount) {
      v.push({ field: "stream.shard_index", description: `must be below shard_count ${definition.shardCount}` });
    }
    // A shard's ranks are shard_index, + shard_count, ...: the last must be a producer_rank (uint32) too.
    const lastRank = (definition.producerCount - 1) * definition.shardCount + definition.shardIndex;
    if (lastRank > 0xffff_ffff) {
      v.push({
        field: "stream.shard_count",
        description: `its last producer rank, (producer_count - 1) × shard_count + shard_index = ${lastRank}, must fit in a uint32`,
      });
    }
    for (const [i, reader] of s.readers.entries()) {
      try {
        definition.readers.push(resolveIdentity(reader, caller.trustDomain).uri);
      } catch (error) {
        v.push({ field: `stream.readers[${i}]`, description: (error as Error).message });
      }
    }
    const names = new Set<string>();
    for (const [i, g] of definition.consumerGroups.entries()) {
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(g.name))
        v.push({ field: `stream.consumer_groups[${i}].name`, description: "lower-case letters, digits, _ and -, at most 63 characters" });
      if (names.has(g.name)) v.push({ field: `stream.consumer_groups[${i}].name`, description: `"${g.name}" is named twice` });
      names.add(g.name);
      if (g.maxInFlight > 10_000) v.push({ field: `stream.consumer_groups[${i}].max_in_flight`, description: "at most 10000" });
      if (g.maxInFlightBytes > maxWindowBytes) v.push({ field: `stream.consumer_groups[${i}].max_in_flight_bytes`, description: maxWindowBytesText });
      if (g.mode === DeliveryMode.UNSPECIFIED) g.mode = DeliveryMode.RELIABLE;
    }
    if (definition.consumerGroups.length > 64) v.push({ field: "stream.consumer_groups", description: "at most 64 groups" });
    if (v.length) throw invalidArgument(bufferDomain, v);
    return definition;
  }

  return {
    createStream(req: CreateStreamRequest, ctx: HandlerContext) {
      const caller = callerOf(ctx);
      if (!policy.maySubmitJobs(caller)) {
        throw rpcError(Code.PermissionDenied, bufferDomain, "CREATE_NOT_ALLOWED", `${caller.uri} may not create streams; data requests create them for you`, {
          metadata: { caller: caller.uri },
        });
      }
      const definition = checkDefinition(req, caller);
      const id = req.streamId || randomBytes(8).toString("hex");
      const { entry } = streams.create({
        id,
        owner: caller.uri,
        requestId: req.requestId || undefined,
        definition,
        state: "open",
        stateReason: "",
        createTime: now(),
      });
      return { stream: toProto(entry), publishToken: streams.tokenFor(entry.record.id) };
    },

    getStream(req: GetStreamRequest, ctx: HandlerContext) {
      return { stream: toProto(readable(req.name, ctx)) };
    },

    listStreams(req: ListStreamsRequest, ctx: HandlerContext) {
      const caller = callerOf(ctx);
      const page = readPage(req, bufferDomain);
      const visible = streams.all().filter((e) => mayRead(e, caller));
      const { items, nextPageToken } = pageOf(visible.slice(page.offset, page.offset + page.size + 1), page);
      return { streams: items.map(toProto), nextPageToken };
    },

    deleteStream(req: DeleteStreamRequest, ctx: HandlerContext) {
      const entry = readable(req.name, ctx);
      const caller = callerOf(ctx);
      if (entry.record.owner !== caller.uri && !policy.isAdmin(caller)) {
        throw rpcError(
          Code.PermissionDenied,
          bufferDomain,
          "OWNER_REQUIRED",
          `only the owner of ${req.name} (${entry.record.owner}) or an admin may delete it`,
        );
      }
      streams.delete(entry.record.id, rpcError(Code.Canceled, bufferDomain, "STREAM_DELETED", `${req.name} was deleted by ${caller.uri}`));
      return {};
    },

    async publish(requests: AsyncIterable<WirePublishRequest>, ctx: HandlerContext) {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done || first.value.kind.case !== "open") {
        throw invalidArgument(
          bufferDomain,
          [{ field: "open", description: "the first message of Publish must be open (stream, producer_rank, publish_token)" }],
          "OPEN_REQUIRED",
        );
      }
      const open = first.value.kind.value;
      const id = /^streams\/([A-Za-z0-9-]{1,63})$/.exec(open.stream)?.[1];
      const entry = id ? streams.get(id) : undefined;
      // One answer for an unknown stream and a wrong token: a token is the only way in.
      if (!entry || !streams.tokenMatches(entry.record.id, open.publishToken)) {
        throw rpcError(
          Code.PermissionDenied,
          bufferDomain,
          "PUBLISH_TOKEN_REFUSED",
          `no stream ${open.stream} takes this publish token; use the token CreateStream returned`,
        );
      }
      const live = entry.live;
      const producer = live.producer(open.producerRank);
      producer.connected++;
      let accepted = 0n;
      let duplicates = 0n;
      let ended = false;
      try {
        for (;;) {
          const next = await it.next();
          if (next.done) break;
          const kind = next.value.kind;
          if (kind.case === "batch") {
            const batch = kind.value;
            const header = readBatchHeader(batch);
            if (await live.publish(open.producerRank, batch, header, ctx.signal)) accepted++;
            else duplicates++;
            rates.published(entry.record.id, batch.byteLength);
          } else if (kind.case === "done") {
            live.done(open.producerRank, kind.value.batchCount, kind.value.eventCount, kind.value.skippedEventCount);
            ended = true;
          } else {
            throw invalidArgument(bufferDomain, [{ field: "open", description: "open may be sent only once" }]);
          }
        }
      } finally {
        producer.connected--;
      }
      // Nothing but open: a rank asking where it stands, as it does every few dozen MiB it publishes.
      if (accepted + duplicates === 0n && !ended) ctx.values.set(routineCall, true);
      return { acceptedBatches: accepted, duplicateBatches: duplicates, nextSeq: producer.nextSeq };
    },

    async *subscribe(req: SubscribeRequest, ctx: HandlerContext): AsyncGenerator<WireSubscribeResponse> {
      const entry = readable(req.stream, ctx, "stream");
      const live: BufferStream = entry.live;
      if (live.state === "lost") {
        throw rpcError(Code.FailedPrecondition, bufferDomain, "STREAM_LOST", `${req.stream} was lost: ${live.stateReason}`);
      }
      const group = live.group(req.consumerGroup);
      if (!group) {
        throw invalidArgument(
          bufferDomain,
          [
            {
              field: "consumer_group",
              description: `"${req.consumerGroup}" is not a group of ${req.stream}; its groups: ${live.groups.map((g) => g.config.name).join(", ")}`,
            },
          ],
          "UNKNOWN_GROUP",
        );
      }
      if (req.maxInFlight > 10_000) throw invalidArgument(bufferDomain, [{ field: "max_in_flight", description: "at most 10000" }]);
      if (req.maxInFlightBytes > maxWindowBytes) throw invalidArgument(bufferDomain, [{ field: "max_in_flight_bytes", description: maxWindowBytesText }]);
      const consumer = live.subscribe(req.consumerGroup, req.maxInFlight, Number(req.startSeq), Number(req.maxInFlightBytes));
      const { batches, bytes } = consumer.window;
      // The newest batch when the reader is ready, not several that queued while it was slow.
      if (group.config.mode === "latest") ctx.values.set(writeAheadKey, 0);
      try {
        yield {
          kind: {
            case: "started",
            value: {
              consumerId: consumer.id,
              consumerGroup: group.config.name,
              maxInFlight: batches,
              maxInFlightBytes: Number.isFinite(bytes) ? BigInt(bytes) : 0n,
            },
          },
        };
        for await (const d of consumer.outbox.drain(ctx.signal, deps.heartbeatMs ?? 15_000)) {
          if (d === idle || d.kind === "caughtUp") {
            yield { kind: { case: "heartbeat", value: { bufferedBatches: BigInt(live.entries.size), caughtUp: d !== idle || consumer.toldCaughtUp } } };
            continue;
          }
          if (d.kind === "end") {
            const t = d.totals;
            yield {
              kind: {
                case: "endOfStream",
                value: {
                  batchCount: BigInt(t.batchCount),
                  eventCount: BigInt(t.eventCount),
                  payloadBytes: BigInt(t.payloadBytes),
                  producerTotals: t.producers.map((p) => ({
                    producerRank: p.rank,
                    batchCount: BigInt(p.batchCount),
                    eventCount: BigInt(p.eventCount),
                    skippedEventCount: BigInt(p.skippedEventCount),
                  })),
                },
              },
            };
            return;
          }
          rates.delivered(entry.record.id, group.config.name, d.entry.bytes.byteLength);
          yield { seq: BigInt(d.entry.seq), kind: { case: "batch", value: d.bytes }, redelivery: d.redelivery };
        }
      } finally {
        live.unsubscribe(consumer);
      }
    },

    ack(req: AckRequest, ctx: HandlerContext) {
      ctx.values.set(routineCall, true);
      const entry = readable(req.stream, ctx, "stream");
      if (req.seqs.length === 0)
        throw invalidArgument(bufferDomain, [{ field: "seqs", description: "no seqs to acknowledge: list the seqs of the batches you received" }]);
      if (req.seqs.includes(0n))
        throw invalidArgument(bufferDomain, [
          { field: "seqs", description: "seq 0 is never delivered (seqs start at 1): acknowledge the seq of each batch received" },
        ]);
      const group = entry.live.group(req.consumerGroup);
      if (!group) {
        throw invalidArgument(
          bufferDomain,
          [{ field: "consumer_group", description: `"${req.consumerGroup}" is not a group of ${req.stream}` }],
          "UNKNOWN_GROUP",
        );
      }
      // Optional for old clients; when given, it must be a subscription of this group.
      if (req.consumerId && !group.knownConsumerIds.has(req.consumerId)) {
        throw rpcError(
          Code.NotFound,
          bufferDomain,
          "UNKNOWN_CONSUMER",
          `consumer ${req.consumerId} never subscribed to group ${req.consumerGroup} of ${req.stream} (or did before this buffer restarted): acknowledge with the consumer_id of your SubscribeStarted; batches it held are delivered again`,
          { metadata: { consumer_id: req.consumerId, consumer_group: req.consumerGroup } },
        );
      }
      return { ackedCount: BigInt(entry.live.ack(req.consumerGroup, req.seqs.map(Number))) };
    },
  };
}
