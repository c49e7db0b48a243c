/**
 * Carries a data request through: its shards placed on the buffer pool, a
 * buffer stream per shard with a fresh publish token, a producer job with
 * every shard's stream and token in its environment (rank r publishes to
 * shard r % N), the job followed to its end, then every shard followed until
 * every group drained it. Each step is idempotent (keyed by the request's
 * id, the placement saved before any stream is made), so after a restart the
 * orchestrator simply runs every unfinished request again from the top.
 *
 * Beside each run a watchdog checks that every group that must drain the
 * stream has a consumer: a request nobody reads holds buffer memory and
 * producer jobs forever, so after `abandonAfterMs` without one it fails.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { DeliveryMode, type Stream, Stream_State } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { type JobQueueService, Job_State, LogStream } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequest_State as State, type DataRequest, type StreamShard, StreamShardSchema } from "../../gen/lclstream/request/v1/request_pb.js";
import { backoffMs, sleep } from "../common/backoff.js";
import { defaultConsumerGroup } from "../common/data-path.js";
import type { Logger } from "../common/logger.js";
import type { ProducerConfig } from "../producer/config.js";
import { findProducerFailure } from "../producer/run.js";
import { ranksOfShard, shardsOf } from "../common/shards.js";
import { type BufferMember, memberOf, placeShards, probeLoads } from "./buffer-pool.js";
import { finalStates, type RequestStore } from "./request-store.js";

export interface OrchestratorOptions {
  store: RequestStore;
  /** The buffers request streams are placed on; an unsharded request goes to the least loaded. */
  buffers: BufferMember[];
  jobs: Client<typeof JobQueueService>;
  /** The cert directory producer jobs present to the buffer. */
  producerCertDir: string;
  /** The `lclstream` command producer jobs run: node and the script. */
  command: { node: string; cli: string };
  logger: Logger;
  /** How often a draining stream is checked; default 250 ms. */
  pollMs?: number;
  /** How long a group that must drain the stream may go without a consumer before the request is abandoned; default 10 minutes. */
  abandonAfterMs?: number;
  /** Told once per request this process started, when its first batch is in the buffer: seconds since the request was created. */
  onFirstBatch?: (seconds: number) => void;
  /** Told when a request's producer job fails: the rank that said it failed, or "unknown" (killed, out of memory). */
  onProducerFailure?: (rank: string) => void;
}

const idOf = (name: string) => name.slice(name.indexOf("/") + 1);

/** A shard in words, for reasons a user reads. */
const shardInWords = (s: StreamShard) => `shard ${s.index} (${s.stream} on ${s.bufferEndpoint})`;
/** What a request lost with a shard: "its stream", or which shard when it has several. */
const lostInWords = (r: DataRequest, s: StreamShard) => (r.shards.length > 1 ? `its ${shardInWords(s)}` : "its stream");

export class Orchestrator {
  readonly #options: OrchestratorOptions;
  readonly #running = new Map<string, AbortController>();
  /** Requests started new here, whose first batch has not been seen yet. */
  readonly #awaitingFirstBatch = new Set<string>();

  constructor(options: OrchestratorOptions) {
    this.#options = options;
  }

  /** Starts (or resumes) carrying a request; returns at once. */
  start(request: DataRequest, config: ProducerConfig): void {
    const id = idOf(request.name);
    if (this.#running.has(id)) return;
    if (request.state === State.PENDING) this.#awaitingFirstBatch.add(id);
    const abort = new AbortController();
    this.#running.set(id, abort);
    void this.#run(id, config, abort.signal)
      .catch((error) => {
        if (abort.signal.aborted) return;
        this.#options.logger.error({ err: error, request: request.name }, "data request failed");
        this.#update(id, (r) => this.#end(r, State.FAILED, `the request could not be carried out: ${ConnectError.from(error).rawMessage}`));
      })
      .finally(() => {
        this.#running.delete(id);
        this.#awaitingFirstBatch.delete(id);
      });
  }

  /** Cancels a request: its jobs are canceled and its stream deleted. */
  cancel(id: string, reason: string): Promise<DataRequest> {
    return this.#stop(id, State.CANCELED, reason || "canceled by its owner");
  }

  /** Ends a request before its time: stops following it, cancels its jobs, deletes its stream. */
  async #stop(id: string, state: State, reason: string): Promise<DataRequest> {
    this.#running.get(id)?.abort();
    const r = this.#options.store.get(id)!;
    for (const job of r.jobs) await this.#options.jobs.cancelJob({ name: job }).catch(ignore(Code.FailedPrecondition, Code.NotFound));
    await this.#deleteStreams(r);
    return this.#update(id, (x) => this.#end(x, state, reason));
  }

  /** The buffer that holds a shard, found by the endpoint the request names. */
  #bufferOf(shard: StreamShard): BufferMember {
    const member = memberOf(this.#options.buffers, shard);
    if (!member) throw new ConnectError(`${shardInWords(shard)} is on a buffer this service no longer has in its pool`, Code.FailedPrecondition);
    return member;
  }

  /**
   * Reports the time to a request's first batch, once, from the buffer's own
   * time of it, for requests new to this process (one resumed after a
   * restart may have had its first batch long ago).
   */
  #noteFirstBatch(id: string, r: DataRequest, s: Stream | undefined) {
    const first = s?.metrics?.firstBatchTime;
    if (!first || !r.createTime || !this.#awaitingFirstBatch.delete(id)) return;
    this.#options.onFirstBatch?.(Math.max(0, timestampMs(first) - timestampMs(r.createTime)) / 1000);
  }

  /** A shard's stream now; undefined when its buffer does not answer. */
  async #streamOf(shard: StreamShard, signal: AbortSignal) {
    return (
      await this.#bufferOf(shard)
        .client.getStream({ name: shard.stream }, { signal })
        .catch(() => undefined)
    )?.stream;
  }

  /** Deletes every shard's stream (best effort: a buffer that is gone keeps nothing of a non-durable stream). */
  async #deleteStreams(r: DataRequest) {
    await Promise.all(
      shardsOf(r)
        .filter((s) => s.stream)
        .map((s) =>
          this.#bufferOf(s)
            .client.deleteStream({ name: s.stream })
            .catch(ignore(Code.NotFound, Code.Unavailable, Code.FailedPrecondition)),
        ),
    );
  }

  /** Stops following requests (they go on; a new orchestrator picks them up). */
  close(): void {
    for (const abort of this.#running.values()) abort.abort();
  }

  #update(id: string, change: (r: DataRequest) => void): DataRequest {
    const r = this.#options.store.get(id)!;
    if (finalStates.has(r.state)) return r;
    change(r);
    r.updateTime = timestampFromMs(Date.now());
    this.#options.store.save(id, r);
    return r;
  }

  #end(r: DataRequest, state: State, reason: string) {
    r.state = state;
    r.stateReason = reason;
    r.endTime = timestampFromMs(Date.now());
  }

  async #run(id: string, config: ProducerConfig, signal: AbortSignal) {
    let r = this.#options.store.get(id)!;
    const count = r.shardCount || 1;
    // Placement first, saved before any stream is made, so a restart makes the same streams.
    if (r.shards.length !== count) {
      // A request from before shards has its stream already.
      const placed = r.stream ? undefined : placeShards(await probeLoads(this.#options.buffers, signal), count);
      r = this.#update(id, (x) => {
        x.shards = placed
          ? placed.map((b, index) =>
              create(StreamShardSchema, {
                index,
                bufferEndpoint: b.consumerUrl,
                bufferRoute: b.route ?? "",
                producerRanks: ranksOfShard(index, count, x.parallelism),
              }),
            )
          : shardsOf(x);
      });
    }
    const tokens: string[] = [];
    for (const shard of r.shards) {
      const { stream, publishToken } = await this.#bufferOf(shard).client.createStream(
        {
          stream: {
            readers: [r.owner, ...r.readers],
            capacityBytes: r.bufferCapacityBytes,
            durable: r.durable,
            producerCount: shard.producerRanks.length,
            consumerGroups: r.consumerGroups,
            request: r.name,
            shardCount: count > 1 ? count : 0,
            shardIndex: shard.index,
          },
          // Shard 0's key is the request's id, as it was before requests had shards.
          requestId: shard.index ? `${id}-${shard.index}` : id,
        },
        { signal },
      );
      shard.stream = stream!.name;
      tokens.push(publishToken);
    }
    r = this.#update(id, (x) => {
      x.shards = r.shards;
      x.stream = r.shards[0]!.stream;
      x.bufferEndpoint = r.shards[0]!.bufferEndpoint;
    });
    const watchdog = new AbortController();
    void this.#watchConsumers(id, r, AbortSignal.any([signal, watchdog.signal])).catch((error: unknown) =>
      this.#options.logger.error({ err: error, request: r.name }, "the consumer watchdog failed"),
    );
    try {
      await this.#follow(id, r, tokens, config, signal);
    } finally {
      watchdog.abort();
    }
  }

  /** Fails the request when a group that must drain its stream goes `abandonAfterMs` without a consumer. */
  async #watchConsumers(id: string, r: DataRequest, signal: AbortSignal) {
    const limitMs = this.#options.abandonAfterMs ?? 600_000;
    const mustDrain = new Set(r.consumerGroups.filter((g) => g.mode !== DeliveryMode.LATEST_ONLY).map((g) => g.name));
    if (mustDrain.size === 0) mustDrain.add(defaultConsumerGroup);
    const lastSeen = new Map([...mustDrain].map((g) => [g, Date.now()]));
    while (!signal.aborted) {
      await sleep(Math.min(1000, limitMs / 4), signal);
      // A group has a consumer when any shard sees one (a consumer may read some shards only).
      for (const shard of r.shards) {
        const s = await this.#streamOf(shard, signal);
        // A shard lost while its producers run (its buffer restarted without it) ends the request now, saying which.
        if (s?.state === Stream_State.LOST && !signal.aborted) {
          await this.#stop(id, State.FAILED, `${lostInWords(r, shard)} was lost: ${s.stateReason}`);
          return;
        }
        for (const g of s?.metrics?.groups ?? []) if (g.consumers > 0 || g.endOfStreamDelivered) lastSeen.set(g.group, Date.now());
        this.#noteFirstBatch(id, r, s);
      }
      if (signal.aborted) continue;
      const abandoned = [...lastSeen].find(([, at]) => Date.now() - at > limitMs)?.[0];
      if (abandoned !== undefined) {
        const why = `abandoned: consumer group "${abandoned}" had no consumer for ${Math.round(limitMs / 1000)} s, so the jobs were canceled and the stream deleted`;
        this.#options.logger.warn({ request: r.name, group: abandoned }, "data request abandoned");
        await this.#stop(id, State.FAILED, why);
        return;
      }
    }
  }

  /**
   * What a failed producer rank said (`producer rank 1 failed: ...`), from its
   * job's log, which the request's owner cannot read; undefined when it said
   * nothing (killed, or the log is gone).
   */
  async #producerFailure(job: string, signal: AbortSignal): Promise<string | undefined> {
    const decoder = new TextDecoder();
    let tail = "";
    try {
      for await (const chunk of this.#options.jobs.streamJobLogs({ name: job, log: LogStream.STDERR }, { signal })) {
        // Keep a bounded tail: the rank's last words are at the end.
        tail = (tail + decoder.decode(chunk.data, { stream: true })).slice(-64 * 1024);
      }
    } catch {
      return undefined;
    }
    return findProducerFailure(tail);
  }

  /** Why the request failed when one of its shards was lost (its producers fail with it): which shard, and why; else undefined. */
  async #lostShard(r: DataRequest, signal: AbortSignal): Promise<string | undefined> {
    for (const shard of r.shards) {
      const s = await this.#streamOf(shard, signal);
      if (s?.state === Stream_State.LOST) return `${lostInWords(r, shard)} was lost: ${s.stateReason}`;
    }
    return undefined;
  }

  /** Submits the producer job, follows it to its end, then the stream until it drained. */
  async #follow(id: string, r: DataRequest, publishTokens: string[], config: ProducerConfig, signal: AbortSignal) {
    const { jobs } = this.#options;

    const script = [
      "cat > producer.json <<'LCLSTREAM_PRODUCER_CONFIG'",
      JSON.stringify(config),
      "LCLSTREAM_PRODUCER_CONFIG",
      '$mpirun "$LCLSTREAM_NODE" "$LCLSTREAM_CLI" produce --config producer.json',
    ].join("\n");
    const { job } = await jobs.submitJob(
      {
        spec: {
          name: `request-${id}`,
          script,
          backend: r.backend,
          resources: { processCount: r.parallelism },
          maxRestarts: r.restartOnFailure ? 2 : 0,
          environment: {
            LCLSTREAM_NODE: this.#options.command.node,
            LCLSTREAM_CLI: this.#options.command.cli,
            // One entry per shard: rank r takes the r % N-th (lclstream produce).
            LCLSTREAM_BUFFER_URL: r.shards.map((s) => this.#bufferOf(s).producerUrl).join(","),
            LCLSTREAM_STREAM: r.shards.map((s) => s.stream).join(","),
            LCLSTREAM_PUBLISH_TOKEN: publishTokens.join(","),
            LCLSTREAM_CERT_DIR: this.#options.producerCertDir,
            LCLSTREAM_LOG_LEVEL: "warn",
          },
        },
        requestId: id,
      },
      { signal },
    );
    this.#update(id, (x) => {
      x.jobs = [job!.name];
      if (x.state === State.PENDING) x.state = State.RUNNING;
    });

    // The producers: to their end.
    // Watched again from the start when the job queue restarts: only the last transition matters.
    const last = await retryWhileUnavailable(async () => {
      let seen: { state: Job_State; info: string } | undefined;
      for await (const { transition } of jobs.watchJob({ name: job!.name }, { signal })) seen = { state: transition!.state, info: transition!.info };
      return seen;
    }, signal);
    if (last?.state !== Job_State.COMPLETED) {
      const why =
        last?.state === Job_State.CANCELED
          ? "its producer job was canceled"
          : ((await this.#lostShard(r, signal)) ?? (await this.#producerFailure(job!.name, signal)) ?? `its producer job failed: ${last?.info ?? "unknown"}`);
      if (last?.state !== Job_State.CANCELED) this.#options.onProducerFailure?.(/^producer rank (\d+) failed/.exec(why)?.[1] ?? "unknown");
      // Ended first: a consumer told its stream is gone then finds the request's reason.
      this.#update(id, (x) => this.#end(x, last?.state === Job_State.CANCELED ? State.CANCELED : State.FAILED, why));
      await this.#deleteStreams(r);
      return;
    }
    this.#update(id, (x) => (x.state = State.DRAINING));

    // The consumers: until every group has the end of stream of every shard.
    const pending = new Set(r.shards);
    while (pending.size) {
      signal.throwIfAborted();
      for (const shard of pending) {
        const buffer = this.#bufferOf(shard).client;
        const { stream: s } = await retryWhileUnavailable(() => buffer.getStream({ name: shard.stream }, { signal }), signal);
        this.#noteFirstBatch(id, r, s);
        if (s!.state === Stream_State.DRAINED) pending.delete(shard);
        else if (s!.state === Stream_State.LOST) {
          this.#update(id, (x) => this.#end(x, State.FAILED, `${lostInWords(r, shard)} was lost: ${s!.stateReason}`));
          await this.#deleteStreams(r);
          return;
        }
      }
      if (pending.size) await sleep(this.#options.pollMs ?? 250, signal);
    }
    this.#update(id, (x) => this.#end(x, State.SUCCEEDED, "every producer finished and every consumer group drained the stream"));
  }
}

/**
 * Runs `call` again while it fails with UNAVAILABLE (a service restarting, a
 * connection broken), waiting longer each time up to 5 s; any other failure,
 * and the signal, end it.
 */
async function retryWhileUnavailable<T>(call: () => Promise<T>, signal: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (signal.aborted || ConnectError.from(error).code !== Code.Unavailable) throw error;
      await sleep(backoffMs(attempt), signal);
    }
  }
}

/** A catch handler that swallows the given codes. */
function ignore(...codes: Code[]) {
  return (error: unknown) => {
    if (!codes.includes(ConnectError.from(error).code)) throw error;
  };
}
