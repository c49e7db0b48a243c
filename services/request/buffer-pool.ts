/**
 * The buffers a request service places request streams on, and the
 * placement: a request's shards go to the least-loaded healthy buffers, one
 * shard per buffer while there are enough, as Kafka spreads a topic's
 * partitions over brokers.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { type BufferService, Stream_State } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import type { StreamShard } from "../../gen/lclstream/request/v1/request_pb.js";

/** One buffer of the pool. */
export interface BufferMember {
  client: Client<typeof BufferService>;
  /** The buffer as producer jobs reach it. */
  producerUrl: string;
  /** The buffer as consumers reach it (the front door, when there is one), told to them in each request. */
  consumerUrl: string;
  /** Behind the front door, the `lclstream-buffer` header value that routes to this buffer (none for the first). */
  route?: string;
}

/** The buffer of `pool` that holds `shard`: the one consumers reach by its endpoint and route. */
export function memberOf(pool: BufferMember[], shard: StreamShard): BufferMember | undefined {
  return pool.find((b) => b.consumerUrl === shard.bufferEndpoint && (b.route ?? "") === shard.bufferRoute);
}

/** A buffer's load as placement weighs it: its streams still in use, then the bytes they hold. */
export interface BufferLoad {
  member: BufferMember;
  activeStreams: number;
  bufferedBytes: bigint;
}

/** How long a buffer may take to answer before placement counts it unhealthy. */
const probeTimeoutMs = 2000;

/** Each buffer's load; undefined for one that does not answer (unhealthy). */
export async function probeLoads(pool: BufferMember[], signal?: AbortSignal): Promise<(BufferLoad | undefined)[]> {
  return Promise.all(
    pool.map(async (member) => {
      try {
        let activeStreams = 0;
        let bufferedBytes = 0n;
        let pageToken = "";
        do {
          const page = await member.client.listStreams({ pageSize: 1000, pageToken }, { signal, timeoutMs: probeTimeoutMs });
          for (const s of page.streams) {
            if (s.state === Stream_State.OPEN || s.state === Stream_State.COMPLETE) activeStreams++;
            bufferedBytes += s.metrics?.bufferedBytes ?? 0n;
          }
          pageToken = page.nextPageToken;
        } while (pageToken);
        return { member, activeStreams, bufferedBytes };
      } catch {
        return undefined;
      }
    }),
  );
}

/**
 * Picks a buffer for each of `count` shards: each shard goes to the healthy
 * buffer with the fewest of this request's shards so far (so they spread
 * over as many buffers as there are), then the fewest active streams, then
 * the fewest buffered bytes. UNAVAILABLE when no buffer answers.
 */
export function placeShards(loads: (BufferLoad | undefined)[], count: number): BufferMember[] {
  const healthy = loads.filter((l): l is BufferLoad => l !== undefined).map((l) => ({ ...l, mine: 0 }));
  if (!healthy.length) {
    throw new ConnectError(`none of the ${loads.length} buffers of the pool answered; check that they run (lclstream health)`, Code.Unavailable);
  }
  const placed: BufferMember[] = [];
  for (let i = 0; i < count; i++) {
    healthy.sort(
      (a, b) => a.mine - b.mine || a.activeStreams - b.activeStreams || (a.bufferedBytes < b.bufferedBytes ? -1 : a.bufferedBytes > b.bufferedBytes ? 1 : 0),
    );
    const least = healthy[0]!;
    placed.push(least.member);
    least.mine++;
    least.activeStreams++;
  }
  return placed;
}
