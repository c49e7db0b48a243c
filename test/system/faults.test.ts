/**
 * Faults on the whole mesh, with real processes: a producer killed with
 * SIGKILL mid-stream fails its request with the reason, or, with
 * restart_on_failure, its job runs again (the next jobndx) and the stream
 * completes with every event once (the buffer drops what the new run sends
 * again); the job queue restarted, and the buffer (its own process here, as
 * deployed) SIGKILLed under a durable stream. Each ends with the end-of-stream
 * totals checked against the events the producers made.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { JobQueueService, Job_State } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { fetchRequest, type FetchProgress } from "../../services/cli/fetch.js";
import { createMeshTransport } from "../../services/common/client.js";
import { useLocalMesh } from "../helpers/mesh.js";
import { internalConfig } from "../helpers/producer-config.js";

const producer = internalConfig(200, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 64 } }, { seed: 3, rateHz: 60, paced: true, batchSize: 4 });

describe("faults on the whole mesh", () => {
  const m = useLocalMesh({ bufferProcess: true });
  const requests = () => createClient(DataRequestService, createMeshTransport({ baseUrl: m.mesh.endpoints.request, tls: m.tls }));
  const jobs = () => createClient(JobQueueService, createMeshTransport({ baseUrl: m.mesh.endpoints.jobs, tls: m.tls }));

  /** Consumes `name`, and SIGKILLs its producer's process group once `afterBatches` batches arrived. */
  function consumeAndKill(name: string, afterBatches: number) {
    let killed: Promise<number> | undefined;
    const onProgress = (p: FetchProgress) => {
      killed ??= p.batches >= afterBatches ? killProducer(name) : undefined;
    };
    const result = fetchRequest({
      requests: requests(),
      transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls: m.tls }),
      name,
      signal: new AbortController().signal,
      onProgress,
    });
    return { result, killed: () => killed };
  }

  async function killProducer(name: string): Promise<number> {
    const { dataRequest } = await requests().getDataRequest({ name });
    const group = Number(/process group (\d+)/.exec(dataRequest!.metrics?.jobs[0]?.info ?? "")?.[1]);
    expect(group, "the producer job says its process group").toBeGreaterThan(0);
    process.kill(-group, "SIGKILL");
    return group;
  }

  it("fails the request with the reason when its producer is killed", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: { producer } as never });
    const { result, killed } = consumeAndKill(dataRequest!.name, 5);
    await expect(result).rejects.toThrow(/failed: its producer job failed/);
    expect(await killed()).toBeGreaterThan(0);
    const { dataRequest: ended } = await requests().getDataRequest({ name: dataRequest!.name });
    expect(ended!.state).toBe(State.FAILED);
    expect(ended!.stateReason).toMatch(/producer job failed/);
  }, 60_000);

  it("with restart_on_failure, runs the producer again and still delivers every event once", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: { producer, restartOnFailure: true } as never });
    const { result, killed } = consumeAndKill(dataRequest!.name, 5);
    const { totals, progress } = await result;
    expect(await killed()).toBeGreaterThan(0);
    expect(totals).toMatchObject({ batchCount: 50n, eventCount: 200n });
    expect(progress.events).toBe(200);
    await expect.poll(async () => (await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.state, { timeout: 20_000 }).toBe(State.SUCCEEDED);
    const { job } = await jobs().getJob({ name: (await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.jobs[0]! });
    expect(job!.jobndx).toBe(2);
    expect(job!.transitions.some((t) => t.jobndx === 1 && t.state === Job_State.FAILED)).toBe(true);
    expect(job!.state).toBe(Job_State.COMPLETED);
  }, 90_000);

  it("completes a request across a restart of the job queue while its producer runs", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: { producer } as never });
    let restarted: Promise<void> | undefined;
    const result = fetchRequest({
      requests: requests(),
      transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls: m.tls }),
      name: dataRequest!.name,
      signal: new AbortController().signal,
      onProgress: (p) => void (restarted ??= p.batches >= 5 ? m.mesh.restart("jobs") : undefined),
    });
    const { totals, progress } = await result;
    await restarted;
    expect(restarted, "the job queue was restarted mid-stream").toBeDefined();
    expect(totals).toMatchObject({ batchCount: 50n, eventCount: 200n });
    expect(progress.events).toBe(200);
    await expect
      .poll(async () => (await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.state, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(State.SUCCEEDED);
    const { dataRequest: ended } = await requests().getDataRequest({ name: dataRequest!.name });
    expect([State[ended!.state], ended!.stateReason]).toEqual(["SUCCEEDED", expect.any(String)]);
  }, 90_000);

  it("keeps a durable stream across a SIGKILL of the buffer: producers and the consumer carry on, nothing is lost", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: { producer, durable: true } as never });
    const name = dataRequest!.name;
    const out = join(m.dir, "durable-run");
    const fetchInto = (onProgress?: (p: FetchProgress) => void) =>
      fetchRequest({
        requests: requests(),
        transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls: m.tls }),
        name,
        out,
        signal: new AbortController().signal,
        onProgress,
      });
    let restarted: Promise<void> | undefined;
    // The consumer's stream breaks with the buffer; started again on the same directory it takes up where it was.
    const first = await fetchInto((p) => void (restarted ??= p.batches >= 5 ? m.mesh.crashBuffer() : undefined)).then(
      (r) => r,
      (e: unknown) => e as Error,
    );
    await restarted;
    expect(restarted, "the buffer was killed mid-stream").toBeDefined();
    const { totals, progress } = first instanceof Error ? await fetchInto() : first;
    expect(totals).toMatchObject({ batchCount: 50n, eventCount: 200n });
    expect(progress.events).toBe(200);
    await expect.poll(async () => (await requests().getDataRequest({ name })).dataRequest!.state, { timeout: 30_000 }).toBeGreaterThanOrEqual(State.SUCCEEDED);
    const { dataRequest: ended } = await requests().getDataRequest({ name });
    expect([State[ended!.state], ended!.stateReason]).toEqual(["SUCCEEDED", expect.any(String)]);
  }, 90_000);
});
