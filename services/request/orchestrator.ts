/**
 * Carries a data request through: a buffer stream with a fresh publish
 * token, a producer job with the token in its environment, the job followed
 * to its end, then the stream followed until every group drained it. Each
 * step is idempotent (keyed by the request's id), so after a restart the
 * orchestrator simply runs every unfinished request again from the top.
 *
 * Beside each run a watchdog checks that every group that must drain the
 * stream has a consumer: a request nobody reads holds buffer memory and
 * producer jobs forever, so after `abandonAfterMs` without one it fails.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type BufferService, DeliveryMode, Stream_State } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { type JobQueueService, Job_State, LogStream } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequest_State as State, type DataRequest } from "../../gen/lclstream/request/v1/request_pb.js";
import { backoffMs, sleep } from "../common/backoff.js";
import { defaultConsumerGroup } from "../common/data-path.js";
import type { Logger } from "../common/logger.js";
import type { ProducerConfig } from "../producer/config.js";
import { findProducerFailure } from "../producer/run.js";
import { finalStates, type RequestStore } from "./request-store.js";

export interface OrchestratorOptions {
  store: RequestStore;
  buffer: Client<typeof BufferService>;
  jobs: Client<typeof JobQueueService>;
  /** The buffer as producer jobs reach it. */
  bufferUrl: string;
  /** The buffer as consumers reach it (the front door, when there is one); default bufferUrl. */
  consumerBufferUrl?: string;
  /** The cert directory producer jobs present to the buffer. */
  producerCertDir: string;
  /** The `lclstream` command producer jobs run: node and the script. */
  command: { node: string; cli: string };
  logger: Logger;
  /** How often a draining stream is checked; default 250 ms. */
  pollMs?: number;
  /** How long a group that must drain the stream may go without a consumer before the request is abandoned; default 10 minutes. */
  abandonAfterMs?: number;
}

const idOf = (name: string) => name.slice(name.indexOf("/") + 1);

export class Orchestrator {
  readonly #options: OrchestratorOptions;
  readonly #running = new Map<string, AbortController>();

  constructor(options: OrchestratorOptions) {
    this.#options = options;
  }

  /** Starts (or resumes) carrying a request; returns at once. */
  start(request: DataRequest, config: ProducerConfig): void {
    const id = idOf(request.name);
    if (this.#running.has(id)) return;
    const abort = new AbortController();
    this.#running.set(id, abort);
    void this.#run(id, config, abort.signal)
      .catch((error) => {
        if (abort.signal.aborted) return;
        this.#options.logger.error({ err: error, request: request.name }, "data request failed");
        this.#update(id, (r) => this.#end(r, State.FAILED, `the request could not be carried out: ${ConnectError.from(error).rawMessage}`));
      })
      .finally(() => this.#running.delete(id));
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
    if (r.stream) await this.#options.buffer.deleteStream({ name: r.stream }).catch(ignore(Code.NotFound));
    return this.#update(id, (x) => this.#end(x, state, reason));
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
    const { stream, publishToken } = await this.#options.buffer.createStream(
      {
        stream: {
          readers: [r.owner, ...r.readers],
          capacityBytes: r.bufferCapacityBytes,
          durable: r.durable,
          producerCount: r.parallelism,
          consumerGroups: r.consumerGroups,
          request: r.name,
        },
        requestId: id,
      },
      { signal },
    );
    r = this.#update(id, (x) => {
      x.stream = stream!.name;
      x.bufferEndpoint = this.#options.consumerBufferUrl ?? this.#options.bufferUrl;
    });
    const watchdog = new AbortController();
    void this.#watchConsumers(id, r, AbortSignal.any([signal, watchdog.signal])).catch((error: unknown) =>
      this.#options.logger.error({ err: error, request: r.name }, "the consumer watchdog failed"),
    );
    try {
      await this.#follow(id, r, publishToken, config, signal);
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
      const s = (await this.#options.buffer.getStream({ name: r.stream }, { signal }).catch(() => undefined))?.stream;
      if (!s || signal.aborted) continue;
      for (const g of s.metrics?.groups ?? []) if (g.consumers > 0 || g.endOfStreamDelivered) lastSeen.set(g.group, Date.now());
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

  /** Submits the producer job, follows it to its end, then the stream until it drained. */
  async #follow(id: string, r: DataRequest, publishToken: string, config: ProducerConfig, signal: AbortSignal) {
    const { buffer, jobs } = this.#options;

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
            LCLSTREAM_BUFFER_URL: this.#options.bufferUrl,
            LCLSTREAM_STREAM: r.stream,
            LCLSTREAM_PUBLISH_TOKEN: publishToken,
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
          : ((await this.#producerFailure(job!.name, signal)) ?? `its producer job failed: ${last?.info ?? "unknown"}`);
      // Ended first: a consumer told its stream is gone then finds the request's reason.
      this.#update(id, (x) => this.#end(x, last?.state === Job_State.CANCELED ? State.CANCELED : State.FAILED, why));
      await buffer.deleteStream({ name: r.stream }).catch(ignore(Code.NotFound));
      return;
    }
    this.#update(id, (x) => (x.state = State.DRAINING));

    // The consumers: until every group has the end of stream.
    for (;;) {
      signal.throwIfAborted();
      const { stream: s } = await retryWhileUnavailable(() => buffer.getStream({ name: r.stream }, { signal }), signal);
      if (s!.state === Stream_State.DRAINED) break;
      if (s!.state === Stream_State.LOST) {
        this.#update(id, (x) => this.#end(x, State.FAILED, `its stream was lost: ${s!.stateReason}`));
        return;
      }
      await sleep(this.#options.pollMs ?? 250, signal);
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
