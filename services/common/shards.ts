/**
 * A data request's shards as clients and services read them: the request
 * service fills `shards`; a request made before shards existed has only its
 * one `stream` and `buffer_endpoint`.
 */
import { create } from "@bufbuild/protobuf";
import { type DataRequest, type StreamShard, StreamShardSchema } from "../../gen/lclstream/request/v1/request_pb.js";

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
