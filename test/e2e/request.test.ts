/**
 * The whole mesh on loopback (CA, job queue with local producer jobs,
 * buffer, producer, request service), as users drive it through the
 * request service.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Dataset } from "h5wasm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { JobQueueService, Job_State } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import { errorInfo } from "../../services/common/errors.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { issueOffline } from "../../services/ca/offline.js";
import { fetchRequest } from "../../services/cli/fetch.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { consume } from "../helpers/buffer.js";
import { lclstream, lclstreamBin } from "../helpers/cli.js";
import { failure } from "../helpers/errors.js";
import { writeCorruptHdf5 } from "../helpers/hdf5.js";
import { h5, h5InMemory } from "../../services/producer/hdf5.js";
import { requestFromFile } from "../../services/cli/requests.js";
import { hdf5Config, internalConfig } from "../helpers/producer-config.js";

const producer = (events: number, extra: JsonObject = {}) => {
  const config = internalConfig(
    events,
    { det: { type: "SyntheticAreaDetector", geometry: "small" }, ts: { type: "SyntheticTimestamp" } },
    { seed: 5, steps: [{ type: "PeakFinder", data_source: "det" }] },
  );
  return { ...config, event_source: { ...(config.event_source as JsonObject), ...extra } };
};

describe("data requests through the whole mesh", () => {
  let stateDir: string;
  let mesh: LocalMesh;
  let me: CertMaterial;
  let other: CertMaterial;
  const requestsAs = (tls: CertMaterial): Client<typeof DataRequestService> =>
    createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
  const bufferAs = (tls: CertMaterial) => createClient(BufferService, createMeshTransport({ baseUrl: mesh.endpoints.buffer, tls }));
  const waitFor = async (name: string, states: State[]) => {
    for (;;) {
      const { dataRequest } = await requestsAs(me).getDataRequest({ name });
      if (states.includes(dataRequest!.state)) return dataRequest!;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-e2e-"));
    mesh = await startLocalMesh({ stateDir, logLevel: "silent" });
    me = await readCertDir(mesh.endpoints.certDir);
    other = await issueOffline(stateDir, { identity: "user/mallory" });
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("streams every event to two consumer groups, with matching totals, and ends SUCCEEDED", { timeout: 60_000 }, async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({
      dataRequest: { parallelism: 2, producer: producer(40), consumerGroups: [{ name: "analysis" }, { name: "archive" }] },
    });
    const name = dataRequest!.name;
    const transportFor = (baseUrl: string) => createMeshTransport({ baseUrl, tls: me });
    const [analysis, archive] = await Promise.all(
      ["analysis", "archive"].map((group) => fetchRequest({ requests: requestsAs(me), transportFor, name, group, signal: new AbortController().signal })),
    );
    for (const got of [analysis!, archive!]) {
      expect(got.totals).toMatchObject({ eventCount: 40n, batchCount: 10n });
      expect(got.progress.events).toBe(40);
    }
    const done = await waitFor(name, [State.SUCCEEDED, State.FAILED]);
    expect(done.state).toBe(State.SUCCEEDED);
    expect(done.metrics?.events).toBe(40n);
    expect(done.metrics?.jobs[0]?.state).toBe("COMPLETED");
    // `requests watch` says, a line at a time: elapsed time, state, totals, rate and jobs.
    const watched = await lclstream(["requests", "watch", name, "--state-dir", stateDir]);
    expect(watched.code).toBe(0);
    // JSON in one spelling, the proto's (snake_case, as the producer config inside is written): a line a request from list.
    const listed = await lclstream(["requests", "list", "--json", "--state-dir", stateDir]);
    const mine = listed.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { name: string; state: string; create_time?: string })
      .find((r) => r.name === name);
    expect(mine).toMatchObject({ state: "STATE_SUCCEEDED", create_time: expect.any(String) });
    const got = await lclstream(["requests", "get", name, "--state-dir", stateDir]);
    expect(got.stdout).toContain('"consumer_groups"');
    expect(got.stdout).not.toContain('"consumerGroups"');
    expect(watched.stdout.trim().split("\n").at(-1)).toMatch(/^\d+s\tsucceeded\t40 events\t10 batches\t[\d.]+ MB\t[\d.]+ MB\/s\tjobs\/\S+ COMPLETED/);
  });

  it("refuses a producer config with an error before any job starts", async () => {
    const jobsBefore = (await createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls: me })).listJobs({ pageSize: 1000 })).jobs
      .length;
    const bad = await failure(
      requestsAs(me).createDataRequest({
        dataRequest: { producer: { ...producer(4), data_sources: { det: { type: "SyntheticAreaDetector", geometry: "jungfrau9M" } } } },
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.reason).toBe("INVALID_CONFIG");
    expect(bad.fields).toEqual(["data_request.producer.data_sources.det.geometry"]);
    // A step on a field no source makes is refused as early, not found by the job at run time.
    const unfit = await failure(
      requestsAs(me).createDataRequest({
        dataRequest: {
          producer: {
            ...producer(4),
            processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 4, steps: [{ type: "PeakFinder", data_source: "nothing" }] },
          },
        },
      }),
    );
    expect(unfit).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_CONFIG", fields: ["data_request.producer.processing_pipeline.steps.0"] });
    expect(unfit.message).toContain('no field "nothing"');
    const jobsAfter = (await createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls: me })).listJobs({ pageSize: 1000 })).jobs
      .length;
    expect(jobsAfter).toBe(jobsBefore);
  });

  it("says how many events a request's producers will make when the config tells: an internal source's count, an HDF5 file's events", async () => {
    const path = join(stateDir, "counted.h5");
    await writeCorruptHdf5(path, 24); // its metadata is whole: 24 events of /x
    const expected = async (config: JsonObject) =>
      (await requestsAs(me).createDataRequest({ validateOnly: true, dataRequest: { producer: config } })).dataRequest!.expectedEventCount;
    expect(await expected(internalConfig(7, { v: { type: "SyntheticScalar" } }))).toBe(7n);
    expect(await expected(hdf5Config([path], { x: { type: "HDF5Dataset", path: "/x" } }))).toBe(24n);
  });

  // A rank that fails while its connection to the buffer is open ends its
  // process; the owner reads its last words in the request, not "exit code 1".
  it.each([
    [
      "meets a corrupt chunk mid-stream",
      async () => {
        const path = join(stateDir, "corrupt.h5");
        await writeCorruptHdf5(path);
        return hdf5Config([path], { x: { type: "HDF5Dataset", path: "/x" } }, { batchSize: 2 });
      },
      /^producer rank 0 failed: reading events \d+\.\.\d+ of \/x in .*corrupt\.h5 failed: the file is corrupt or truncated there$/,
    ],
    [
      "cannot allocate its arrays",
      internalConfig(6, { det: { type: "GenericRandomNumpyArray", array_shape: "100000,100000", array_dtype: "float32" } }, { batchSize: 2 }),
      /^producer rank 0 failed: Invalid typed array length/,
    ],
    [
      "makes a batch over the message limit",
      internalConfig(20, { det: { type: "SyntheticAreaDetector", geometry: "jungfrau4M" } }, { batchSize: 10 }),
      /^producer rank 0 failed: batch of 84 MB is over the 64 MiB message limit; lower batch_size$/,
    ],
  ])("fails the request within seconds with the cause when its producer %s", { timeout: 30_000 }, async (_, config, reason) => {
    const producer = typeof config === "function" ? await config() : config;
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer } });
    const started = Date.now();
    const ended = await waitFor(dataRequest!.name, [State.FAILED, State.SUCCEEDED, State.CANCELED]);
    expect(ended.state).toBe(State.FAILED);
    expect(ended.stateReason).toMatch(reason);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("keeps a request to its owner: others can neither see, watch, cancel, subscribe nor create", async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(8, { rate_hz: 20, paced: true }) } });
    const name = dataRequest!.name;
    const mallory = requestsAs(other);
    expect(await failure(mallory.getDataRequest({ name }))).toMatchObject({ code: Code.NotFound, reason: "REQUEST_NOT_FOUND" });
    expect(await failure(mallory.cancelDataRequest({ name }))).toMatchObject({ code: Code.NotFound });
    expect(await failure(mallory.watchDataRequest({ name })[Symbol.asyncIterator]().next())).toMatchObject({ code: Code.NotFound });
    expect((await mallory.listDataRequests({})).dataRequests).toEqual([]);
    const stream = (await waitFor(name, [State.RUNNING, State.DRAINING, State.SUCCEEDED])).stream;
    expect(await failure(consume(bufferAs(other), stream, "default"))).toMatchObject({ code: Code.NotFound, reason: "STREAM_NOT_FOUND" });
    expect(await failure(mallory.createDataRequest({ dataRequest: { experiment: "mfx101", producer: producer(4) } }))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "EXPERIMENT_NOT_ALLOWED",
    });
    await consume(bufferAs(me), stream, "default");
    expect((await waitFor(name, [State.SUCCEEDED, State.FAILED])).state).toBe(State.SUCCEEDED);
  });

  it("resumes a consumer killed mid-stream: every batch arrives once, and the totals match", { timeout: 60_000 }, async () => {
    const file = join(stateDir, "resume.yaml");
    await writeFile(file, JSON.stringify({ producer: producer(64, { rate_hz: 40, paced: true }) }));
    const out = join(stateDir, "resume-out");
    const first = spawn(process.execPath, [lclstreamBin, "get", file, "--out", out, "--state-dir", stateDir], { stdio: "ignore" });
    const journal = join(out, "received.jsonl");
    await expect.poll(async () => (existsSync(journal) ? (await readFile(journal, "utf8")).split("\n").length : 0), { timeout: 20_000 }).toBeGreaterThan(4);
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    const { request: name } = JSON.parse(await readFile(join(out, "request.json"), "utf8")) as { request: string };
    expect((await requestsAs(me).getDataRequest({ name })).dataRequest!.state).toBe(State.RUNNING);

    const again = await lclstream(["get", "--resume", name, "--out", out, "--state-dir", stateDir]);
    expect(again.stderr).toContain(`${name}: resuming`);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/64 events in 16 batches \([1-9]\d* of them from before the resume\).*totals match/);
    const seqs = (await readFile(journal, "utf8"))
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { seq: string }).seq);
    expect(new Set(seqs).size).toBe(16);
    expect(seqs.length).toBe(16);
    expect((await readdir(out)).filter((f) => f.endsWith(".pb"))).toHaveLength(16);
    expect((await waitFor(name, [State.SUCCEEDED, State.FAILED])).state).toBe(State.SUCCEEDED);
  });

  it("detaches on Ctrl-C, saying what was written and how to resume; a second Ctrl-C cancels", { timeout: 90_000 }, async () => {
    const file = join(stateDir, "detach.yaml");
    await writeFile(file, JSON.stringify({ producer: producer(400, { rate_hz: 40, paced: true }) }));
    const out = join(stateDir, "detach-out");
    const get = (args: string[]) => {
      const child = spawn(process.execPath, [lclstreamBin, ...args, "--state-dir", stateDir], { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      return { child, exited, stderr: () => stderr };
    };
    const journal = join(out, "received.jsonl");
    const lines = async () => (existsSync(journal) ? (await readFile(journal, "utf8")).trim().split("\n").length : 0);
    const first = get(["get", file, "--out", out]);
    await expect.poll(lines, { timeout: 20_000 }).toBeGreaterThan(4);
    first.child.kill("SIGINT");
    expect(await first.exited).toBe(130);
    const { request: name } = JSON.parse(await readFile(join(out, "request.json"), "utf8")) as { request: string };
    const id = name.replace("dataRequests/", "");
    expect(first.stderr()).toMatch(new RegExp(`${name}: detached after \\d+ events in \\d+ batches, written to ${out}; the request goes on`));
    expect(first.stderr()).toContain(`resume: lclstream get --resume ${id} --out ${out}`);
    expect([State.RUNNING, State.DRAINING]).toContain((await requestsAs(me).getDataRequest({ name })).dataRequest!.state);

    // Joined again as it says, and interrupted twice: the second Ctrl-C cancels the request.
    const second = get(["get", "--resume", id, "--out", out]);
    await expect.poll(() => second.stderr(), { timeout: 20_000 }).toContain("resuming");
    second.child.kill("SIGINT");
    await expect.poll(() => second.stderr(), { timeout: 10_000 }).toContain("detached");
    second.child.kill("SIGINT");
    expect(await second.exited).toBe(130);
    expect((await waitFor(name, [State.CANCELED, State.SUCCEEDED, State.FAILED])).state).toBe(State.CANCELED);
  });

  it("runs examples/ml-training.yaml as its header says: sample CXI files into the data directory, then get", { timeout: 90_000 }, async () => {
    const env = { LCLSTREAM_STATE_DIR: stateDir };
    const made = await lclstream(["sample-data", "cxi"], { env });
    expect(made.code, made.stderr).toBe(0);
    const cxi = ["r0042-0.cxi", "r0042-1.cxi"].map((f) => join(stateDir, "run42", f));
    expect(made.stdout.trim().split("\n")).toEqual(cxi);
    const out = join(stateDir, "ml-out");
    const example = fileURLToPath(new URL("../../examples/ml-training.yaml", import.meta.url));
    const got = await lclstream(["get", example, "--format", "hdf5", "--out", out], { env, timeoutMs: 60_000 });
    expect(got.code, got.stderr).toBe(0);
    expect(got.stderr).toContain(`relative paths are read under the data directory ${stateDir}`);
    expect(got.stdout).toMatch(/16 events in 4 batches.*totals match/);
    // Every frame arrives padded to PeakNet's input, with its label: the peak counts are the files' own, shuffled.
    const lib = await h5();
    const file = new lib.File(cxi[0]!, "r");
    const sent = [...((file.get("entry_1/result_1/nPeaks") as Dataset).value as Int32Array)];
    file.close();
    const other = new lib.File(cxi[1]!, "r");
    sent.push(...((other.get("entry_1/result_1/nPeaks") as Dataset).value as Int32Array));
    other.close();
    // The batches are compressed with bitshuffle: read them with the build that has the plugin.
    const { lib: memory, fs } = await h5InMemory();
    const received: number[] = [];
    const batches = (await readdir(out)).filter((f) => f.endsWith(".h5"));
    expect(batches).toHaveLength(4);
    for (const batch of batches) {
      fs.writeFile(`/${batch}`, await readFile(join(out, batch)));
      const h5file = new memory.File(`/${batch}`, "r");
      expect((h5file.get("data/images") as Dataset).shape).toEqual([4, 1, 1920, 1920]);
      received.push(...((h5file.get("data/n_peaks") as Dataset).value as Int32Array));
      h5file.close();
      fs.unlink(`/${batch}`);
    }
    expect(received.sort((a, b) => a - b)).toEqual(sent.sort((a, b) => a - b));
    // A relative path stays under the data directory.
    const config = requestFromFile(await readFile(example, "utf8")) as { producer: { event_source: { files: string[] } } };
    config.producer.event_source.files = ["../outside.cxi"];
    const refused = await failure(requestsAs(me).createDataRequest({ dataRequest: config as never }));
    expect(refused).toMatchObject({ code: Code.PermissionDenied, reason: "PATH_NOT_ALLOWED" });
  });

  it("refuses to resume into a directory that holds another request", async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(4) } });
    const name = dataRequest!.name;
    const result = await lclstream(["get", "--resume", name, "--out", join(stateDir, "resume-out"), "--state-dir", stateDir]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`(group default); write ${name} into another directory`);
    await consume(bufferAs(me), (await waitFor(name, [State.RUNNING, State.DRAINING])).stream, "default");
  });

  it("completes a request across a restart of the request service", { timeout: 60_000 }, async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(40, { rate_hz: 20, paced: true }) } });
    const name = dataRequest!.name;
    const { stream, jobs } = await waitFor(name, [State.RUNNING]);
    await mesh.restart("request");
    const got = await consume(bufferAs(me), stream, "default");
    expect(got.end).toMatchObject({ eventCount: 40n, batchCount: 10n });
    const done = await waitFor(name, [State.SUCCEEDED, State.FAILED]);
    expect(done.state).toBe(State.SUCCEEDED);
    // The restarted service followed the same job and stream, and started nothing new.
    expect(done.jobs).toEqual(jobs);
    expect(done.stream).toBe(stream);
  });

  it("cancels mid-stream: the jobs stop, the stream goes, the consumer is told", { timeout: 30_000 }, async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(400, { rate_hz: 20, paced: true }) } });
    const name = dataRequest!.name;
    const running = await waitFor(name, [State.RUNNING]);
    const consumer = consume(bufferAs(me), running.stream, "default").catch((e: unknown) => e);
    // Mid-stream: once the consumer is in its group (a fixed wait lost the race on a loaded machine,
    // and the consumer then arrived after the stream had gone).
    const consumers = async () => (await bufferAs(me).getStream({ name: running.stream })).stream!.metrics!.groups[0]!.consumers;
    await expect.poll(consumers, { timeout: 10_000 }).toBeGreaterThan(0);
    const canceled = await requestsAs(me).cancelDataRequest({ name, reason: "enough" });
    expect(canceled.dataRequest).toMatchObject({ state: State.CANCELED, stateReason: "enough" });
    const ended = ConnectError.from(await consumer);
    expect([ended.code, errorInfo(ended)?.reason]).toEqual([Code.Canceled, "STREAM_DELETED"]);
    const jobs = createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls: me }));
    await expect.poll(async () => (await jobs.getJob({ name: running.jobs[0]! })).job!.state, { timeout: 10_000 }).toBe(Job_State.CANCELED);
    expect(await failure(requestsAs(me).cancelDataRequest({ name }))).toMatchObject({ code: Code.FailedPrecondition, reason: "REQUEST_ALREADY_ENDED" });
  });
});

describe("a data request nobody consumes", () => {
  it("is abandoned after the configured time: jobs canceled, stream deleted, the request FAILED with the reason", { timeout: 60_000 }, async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "lclstream-abandon-"));
    const mesh = await startLocalMesh({ stateDir, logLevel: "silent", abandonAfterMs: 1500 });
    try {
      const tls = await readCertDir(mesh.endpoints.certDir);
      const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
      const { dataRequest } = await requests.createDataRequest({
        dataRequest: { producer: producer(400, { rate_hz: 20, paced: true }), consumerGroups: [{ name: "analysis" }] },
      });
      const name = dataRequest!.name;
      let ended: Awaited<ReturnType<typeof requests.getDataRequest>>["dataRequest"];
      await expect
        .poll(async () => (ended = (await requests.getDataRequest({ name })).dataRequest!).state, { timeout: 20_000, interval: 200 })
        .toBe(State.FAILED);
      expect(ended!.stateReason).toMatch(/abandoned: consumer group "analysis" had no consumer for 2 s/);
      const jobs = createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls }));
      await expect.poll(async () => (await jobs.getJob({ name: ended!.jobs[0]! })).job!.state, { timeout: 10_000 }).toBe(Job_State.CANCELED);
      const buffer = createClient(BufferService, createMeshTransport({ baseUrl: mesh.endpoints.buffer, tls }));
      expect(await failure(buffer.getStream({ name: ended!.stream }))).toMatchObject({ code: Code.NotFound });
    } finally {
      await mesh.close();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
