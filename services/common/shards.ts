/**
 * A data request's shards as clients and services read them: the request
 * service fills `shards`; a request made before shards existed has only its
 * one `stream` and `buffer_endpoint`.
 */
import { create } from "@bufbuild/protobuf";
import { type StreamTotals, StreamTotalsSchema } from "../../gen/lclstream/data/v1/data_pb.js";
import { type DataRequest, type StreamShard, StreamShardSchema } from "../../gen/lclstream/request/v1/request_pb.js";

/** The header whose value (a shard's buffer_route) routes a call through the front door to one buffer of the pool. */
export const bufferRouteHeader = "lclstream-buffer";

/** Call options that take a call about `shard` to its buffer (its route through the front door, if any). */
export function shardCallHeaders(shard: StreamShard): { headers?: Record<string, string> } {
  return shard.bufferRoute ? { headers: { [bufferRouteHeader]: shard.bufferRoute } } : {};
}

/** The producer ranks of shard `index` of `count` over `ranks` ranks: r with r % count == index. */
export function ranksOfShard(index: number, count: number, ranks: number): number[] {
  const out: number[] = [];
  for (let r = index; r < ranks; r += count) out.push(r);
  return out;
}

/** A request's shards; one made before shards existed has its one stream (none before it has a stream). */
export function shardsOf(r: DataRequest): StreamShard[] {
  if (r.shards.length) return r.shards;
  return r.stream
    ? [create(StreamShardSchema, { index: 0, bufferEndpoint: r.bufferEndpoint, stream: r.stream, producerRanks: ranksOfShard(0, 1, r.parallelism || 1) })]
    : [];
}

/** Totals added up, producer ranks in order (some shards' totals: no rank is checked). */
export function sumTotals(shards: StreamTotals[]): StreamTotals {
  return create(StreamTotalsSchema, {
    batchCount: shards.reduce((n, t) => n + t.batchCount, 0n),
    eventCount: shards.reduce((n, t) => n + t.eventCount, 0n),
    payloadBytes: shards.reduce((n, t) => n + t.payloadBytes, 0n),
    producerTotals: shards.flatMap((t) => t.producerTotals).sort((a, b) => a.producerRank - b.producerRank),
  });
}

/** The shards' totals as one stream's; every rank must be counted exactly once. */
export function mergeTotals(shards: StreamTotals[], parallelism: number): StreamTotals {
  const total = sumTotals(shards);
  const ranks = total.producerTotals.map((p) => p.producerRank);
  if (ranks.length !== parallelism || ranks.some((r, i) => r !== i)) {
    throw new Error(`the shards' totals cover ranks ${ranks.join(", ")}, not each of the ${parallelism} ranks 0-${parallelism - 1} once`);
  }
  return total;
}
