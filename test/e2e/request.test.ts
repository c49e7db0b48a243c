/**
 * The whole mesh on loopback (CA, job queue with local producer jobs,
 * buffer, producer, request service), as users drive it through the
 * request service.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
import { failure } from "../helpers/errors.js";

const producer = (events: number, extra: object = {}) => ({
  batch_size: 4,
  event_source: { type: "synthetic", events, seed: 5, ...extra },
  data_sources: { det: { type: "area_detector", geometry: "small" }, ts: { type: "timestamp" } },
  processing_pipeline: [{ step: "peak_finder", field: "det" }],
});


describe("data requests through the whole mesh", () => {
  let stateDir: string;
  let mesh: LocalMesh;
  let me: CertMaterial;
  let other: CertMaterial;
  const requestsAs = (tls: CertMaterial): Client<typeof DataRequestService> => createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
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
  });

  it("refuses a producer config with an error before any job starts", async () => {
    const jobsBefore = (await createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls: me })).listJobs({ pageSize: 1000 })).jobs.length;
    const bad = await failure(requestsAs(me).createDataRequest({ dataRequest: { producer: { ...producer(4), data_sources: { det: { type: "area_detector", geometry: "jungfrau9M" } } } } }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.reason).toBe("INVALID_CONFIG");
    expect(bad.fields).toEqual(["data_request.producer.data_sources.det.geometry"]);
    const jobsAfter = (await createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls: me })).listJobs({ pageSize: 1000 })).jobs.length;
    expect(jobsAfter).toBe(jobsBefore);
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
    expect(await failure(mallory.createDataRequest({ dataRequest: { experiment: "mfx101", producer: producer(4) } }))).toMatchObject({ code: Code.PermissionDenied, reason: "EXPERIMENT_NOT_ALLOWED" });
    await consume(bufferAs(me), stream, "default");
    expect((await waitFor(name, [State.SUCCEEDED, State.FAILED])).state).toBe(State.SUCCEEDED);
  });

  it("cancels mid-stream: the jobs stop, the stream goes, the consumer is told", { timeout: 30_000 }, async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(400, { rate_hz: 20, paced: true }) } });
    const name = dataRequest!.name;
    const running = await waitFor(name, [State.RUNNING]);
    const consumer = consume(bufferAs(me), (await waitFor(name, [State.RUNNING])).stream, "default").catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 500));
    const canceled = await requestsAs(me).cancelDataRequest({ name, reason: "enough" });
    expect(canceled.dataRequest).toMatchObject({ state: State.CANCELED, stateReason: "enough" });
    const ended = ConnectError.from(await consumer);
    expect([ended.code, errorInfo(ended)?.reason]).toEqual([Code.Canceled, "STREAM_DELETED"]);
    const jobs = createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls: me }));
    await expect.poll(async () => (await jobs.getJob({ name: running.jobs[0]! })).job!.state, { timeout: 10_000 }).toBe(Job_State.CANCELED);
    expect(await failure(requestsAs(me).cancelDataRequest({ name }))).toMatchObject({ code: Code.FailedPrecondition, reason: "REQUEST_ALREADY_ENDED" });
  });
});
