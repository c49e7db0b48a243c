/**
 * The Orchestrator (services/request/orchestrator.ts) against fake buffer and
 * job queue services in memory (connect's router transport): the request's
 * life from its stream to its end, a failed producer's own words, retries
 * while a service is unavailable. No sockets, no processes.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { BufferService, Stream_State } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { JobQueueService, Job_State, LogStream } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestSchema, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { createLogger } from "../../services/common/logger.js";
import { parseProducerConfig } from "../../services/producer/config.js";
import { Orchestrator } from "../../services/request/orchestrator.js";
import { RequestStore } from "../../services/request/request-store.js";
import { internalConfig } from "../helpers/producer-config.js";

const config = parseProducerConfig(internalConfig(4, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 8 } }, { batchSize: 2 }));

interface Fakes {
  /** The job's transitions, as WatchJob sends them. */
  transitions: Job_State[];
  /** What the job wrote to stderr. */
  stderr: string;
  /** getStream calls to answer UNAVAILABLE before the real answer. */
  unavailableFor: number;
  streamState: Stream_State;
  calls: string[];
  /** Streams each buffer of a pool (by URL) holds already. */
  activeStreams?: Record<string, string[]>;
  /** Buffers of a pool (by URL) that do not answer. */
  down?: string[];
  /** The producer job's environment, as submitted. */
  environment?: Record<string, string>;
}

function buffer(f: Fakes, at = ""): Partial<ServiceImpl<typeof BufferService>> {
  return {
    listStreams: () => {
      if (f.down?.includes(at)) throw new ConnectError("connection refused", Code.Unavailable);
      return { streams: (f.activeStreams?.[at] ?? []).map((name) => ({ name, state: Stream_State.OPEN })) };
    },
    createStream: (req) => {
      f.calls.push(`createStream ${req.stream?.producerCount}${at && ` on ${at} as shard ${req.stream?.shardIndex} of ${req.stream?.shardCount}`}`);
      return { stream: { name: `streams/s${req.stream?.shardIndex ?? 0}` }, publishToken: `t${req.stream?.shardIndex ?? 0}` };
    },
    getStream: () => {
      f.calls.push("getStream");
      if (f.unavailableFor-- > 0) throw new ConnectError("restarting", Code.Unavailable);
      return { stream: { name: "streams/s1", state: f.streamState, metrics: { groups: [{ group: "default", consumers: 1 }] } } };
    },
    deleteStream: () => (f.calls.push("deleteStream"), {}),
  };
}

function jobs(f: Fakes): Partial<ServiceImpl<typeof JobQueueService>> {
  return {
    submitJob: (req) => {
      f.calls.push(`submitJob ${req.spec?.resources?.processCount}`);
      f.environment = req.spec?.environment;
      return { job: { name: "jobs/j1" } };
    },
    async *watchJob() {
      for (const state of f.transitions) yield { transition: { state, info: state === Job_State.FAILED ? "exit code 1" : "", jobndx: 1 } };
    },
    async *streamJobLogs(req) {
      if (req.log === LogStream.STDERR) yield { log: LogStream.STDERR, data: new TextEncoder().encode(f.stderr) };
    },
  };
}

describe("Orchestrator", () => {
  let dir: string;
  let store: RequestStore;
  let orchestrator: Orchestrator | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-orchestrator-"));
    store = new RequestStore(join(dir, "requests.db"));
  });
  afterEach(async () => {
    orchestrator?.close();
    store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs a request of `parallelism` ranks over `shardCount` shards, on a pool of buffers named by their URLs. */
  function run(f: Fakes, { pool = ["https://buffer"], parallelism = 2, shardCount = 0, failures = [] as string[] } = {}) {
    const transport = createRouterTransport((router) => router.service(JobQueueService, jobs(f)));
    const buffers = pool.map((url) => {
      const client = createClient(
        BufferService,
        createRouterTransport((router) => router.service(BufferService, buffer(f, pool.length > 1 ? url : ""))),
      );
      return { client, producerUrl: url, consumerUrl: url };
    });
    orchestrator = new Orchestrator({
      store,
      buffers,
      jobs: createClient(JobQueueService, transport),
      producerCertDir: "certs",
      command: { node: "node", cli: "cli.js" },
      logger: createLogger("test"),
      pollMs: 5,
      onProducerFailure: (rank) => failures.push(rank),
    });
    const r = create(DataRequestSchema, {
      name: "dataRequests/r1",
      owner: "spiffe://test/user/alice",
      parallelism,
      shardCount,
      state: State.PENDING,
      consumerGroups: [{ name: "default" }],
    });
    store.insert("r1", r);
    orchestrator.start(r, config);
  }

  async function ended(): Promise<ReturnType<RequestStore["get"]>> {
    for (let i = 0; i < 400; i++) {
      const r = store.get("r1");
      if (r && r.state !== State.PENDING && r.state !== State.RUNNING && r.state !== State.DRAINING) return r;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`still ${State[store.get("r1")!.state]}`);
  }

  const fakes = (over: Partial<Fakes> = {}): Fakes => ({
    transitions: [Job_State.QUEUED, Job_State.ACTIVE, Job_State.COMPLETED],
    stderr: "",
    unavailableFor: 0,
    streamState: Stream_State.DRAINED,
    calls: [],
    ...over,
  });

  it("creates the stream, submits one job for the ranks, and succeeds once the stream drained", async () => {
    const f = fakes();
    run(f);
    const r = await ended();
    expect(r!.state).toBe(State.SUCCEEDED);
    expect(r!.stream).toBe("streams/s0");
    expect(r!.jobs).toEqual(["jobs/j1"]);
    expect(f.calls.slice(0, 2)).toEqual(["createStream 2", "submitJob 2"]);
  });

  it("fails with the producer rank's own line from the job's log, and deletes the stream", async () => {
    const f = fakes({
      transitions: [Job_State.ACTIVE, Job_State.FAILED],
      stderr: "noise\nlclstream: producer rank 1 failed: batch of 84 MB is over the 64 MiB message limit; lower batch_size\n",
    });
    const failures: string[] = [];
    run(f, { failures });
    const r = await ended();
    expect(r!.state).toBe(State.FAILED);
    expect(r!.stateReason).toBe("producer rank 1 failed: batch of 84 MB is over the 64 MiB message limit; lower batch_size");
    expect(failures).toEqual(["1"]); // counted for the request service's metrics, by rank
    await vi.waitFor(() => expect(f.calls).toContain("deleteStream"));
  });

  it("says the job's own words when no rank said anything", async () => {
    const f = fakes({ transitions: [Job_State.ACTIVE, Job_State.FAILED] });
    const failures: string[] = [];
    run(f, { failures });
    expect((await ended())!.stateReason).toBe("its producer job failed: exit code 1");
    expect(failures).toEqual(["unknown"]);
  });

  it("places 3 shards on the least-loaded buffers, a stream each, and gives rank r shard r % 3", async () => {
    const f = fakes({ activeStreams: { "https://a": ["streams/x", "streams/y"], "https://b": [], "https://c": ["streams/z"] } });
    run(f, { pool: ["https://a", "https://b", "https://c"], parallelism: 4, shardCount: 3 });
    const r = await ended();
    expect(r!.state).toBe(State.SUCCEEDED);
    // One shard a buffer, the emptiest first: b (no streams), c (one), a (two).
    expect(r!.shards.map((s) => [s.index, s.bufferEndpoint, s.stream, s.producerRanks])).toEqual([
      [0, "https://b", "streams/s0", [0, 3]],
      [1, "https://c", "streams/s1", [1]],
      [2, "https://a", "streams/s2", [2]],
    ]);
    expect([r!.stream, r!.bufferEndpoint]).toEqual(["streams/s0", "https://b"]);
    expect(f.calls.filter((c) => c.startsWith("createStream"))).toEqual([
      "createStream 2 on https://b as shard 0 of 3",
      "createStream 1 on https://c as shard 1 of 3",
      "createStream 1 on https://a as shard 2 of 3",
    ]);
    expect(f.environment).toMatchObject({
      LCLSTREAM_BUFFER_URL: "https://b,https://c,https://a",
      LCLSTREAM_STREAM: "streams/s0,streams/s1,streams/s2",
      LCLSTREAM_PUBLISH_TOKEN: "t0,t1,t2",
    });
  });

  it("fails naming a lost shard, and deletes the other shards' streams", async () => {
    const f = fakes({ streamState: Stream_State.LOST, activeStreams: {} });
    run(f, { pool: ["https://a", "https://b"], parallelism: 2, shardCount: 2 });
    const r = await ended();
    expect(r!.state).toBe(State.FAILED);
    expect(r!.stateReason).toMatch(/^its shard 0 \(streams\/s0 on https:\/\/a\) was lost: /);
    await vi.waitFor(() => expect(f.calls.filter((c) => c === "deleteStream").length).toBe(2));
  });

  it("leaves out a buffer that does not answer, and fails when none does", async () => {
    const f = fakes({ activeStreams: {}, down: ["https://a"] });
    run(f, { pool: ["https://a", "https://b"], parallelism: 2, shardCount: 2 });
    expect((await ended())!.shards.map((s) => s.bufferEndpoint)).toEqual(["https://b", "https://b"]);
    store.close();
    store = new RequestStore(join(dir, "requests-2.db"));
    const g = fakes({ activeStreams: {}, down: ["https://a", "https://b"] });
    run(g, { pool: ["https://a", "https://b"] });
    const r = await ended();
    expect(r!.state).toBe(State.FAILED);
    expect(r!.stateReason).toContain("none of the 2 buffers of the pool answered");
  });

  it("retries while the buffer is unavailable, then carries on", async () => {
    const f = fakes({ unavailableFor: 2 });
    run(f);
    expect((await ended())!.state).toBe(State.SUCCEEDED);
    expect(f.calls.filter((c) => c === "getStream").length).toBeGreaterThanOrEqual(3);
  });
});
