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
}

function buffer(f: Fakes): Partial<ServiceImpl<typeof BufferService>> {
  return {
    createStream: (req) => (f.calls.push(`createStream ${req.stream?.producerCount}`), { stream: { name: "streams/s1" }, publishToken: "t" }),
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
    submitJob: (req) => (f.calls.push(`submitJob ${req.spec?.resources?.processCount}`), { job: { name: "jobs/j1" } }),
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

  function run(f: Fakes) {
    const transport = createRouterTransport((router) => {
      router.service(BufferService, buffer(f));
      router.service(JobQueueService, jobs(f));
    });
    orchestrator = new Orchestrator({
      store,
      buffer: createClient(BufferService, transport),
      jobs: createClient(JobQueueService, transport),
      bufferUrl: "https://buffer",
      producerCertDir: "certs",
      command: { node: "node", cli: "cli.js" },
      logger: createLogger("test"),
      pollMs: 5,
    });
    const r = create(DataRequestSchema, {
      name: "dataRequests/r1",
      owner: "spiffe://test/user/alice",
      parallelism: 2,
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
    expect(r!.stream).toBe("streams/s1");
    expect(r!.jobs).toEqual(["jobs/j1"]);
    expect(f.calls.slice(0, 2)).toEqual(["createStream 2", "submitJob 2"]);
  });

  it("fails with the producer rank's own line from the job's log, and deletes the stream", async () => {
    const f = fakes({
      transitions: [Job_State.ACTIVE, Job_State.FAILED],
      stderr: "noise\nlclstream: producer rank 1 failed: batch of 84 MB is over the 64 MiB message limit; lower batch_size\n",
    });
    run(f);
    const r = await ended();
    expect(r!.state).toBe(State.FAILED);
    expect(r!.stateReason).toBe("producer rank 1 failed: batch of 84 MB is over the 64 MiB message limit; lower batch_size");
    await vi.waitFor(() => expect(f.calls).toContain("deleteStream"));
  });

  it("says the job's own words when no rank said anything", async () => {
    const f = fakes({ transitions: [Job_State.ACTIVE, Job_State.FAILED] });
    run(f);
    expect((await ended())!.stateReason).toBe("its producer job failed: exit code 1");
  });

  it("retries while the buffer is unavailable, then carries on", async () => {
    const f = fakes({ unavailableFor: 2 });
    run(f);
    expect((await ended())!.state).toBe(State.SUCCEEDED);
    expect(f.calls.filter((c) => c === "getStream").length).toBeGreaterThanOrEqual(3);
  });
});
