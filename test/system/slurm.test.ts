/** The job queue's Slurm backend against real daemons (scripts/slurm-cluster.sh): one node on loopback. */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { JobQueueService, Job_State as State, LogStream, type JobSpecSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService, DataRequest_State as RequestState } from "../../gen/lclstream/request/v1/request_pb.js";
import { fetchRequest } from "../../services/cli/fetch.js";
import { startLocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { readCertDir } from "../../services/common/pki.js";
import { build, type JobsServer } from "../../services/jobs/server.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { internalConfig } from "../helpers/producer-config.js";
import { startJobQueueCli } from "../helpers/job-queue-cli.js";

const run = promisify(execFile);
const clusterScript = fileURLToPath(new URL("../../scripts/slurm-cluster.sh", import.meta.url));

describe("job queue, Slurm backend", () => {
  let pki: TestPki;
  let dir: string;
  let slurmConf: string;
  let server: JobsServer;
  let client: Client<typeof JobQueueService>;
  const start = async () => {
    server = await build(
      { stateDir: join(dir, "state"), submitters: ["user/alice"], backends: [{ type: "slurm", env: { SLURM_CONF: slurmConf }, pollMs: 200 }] },
      { tls: pki.server },
    );
    client = createClient(JobQueueService, createMeshTransport({ baseUrl: server.url, tls: pki.alice }));
  };
  const slurm = (cmd: string, ...args: string[]) => run(cmd, args, { env: { ...process.env, SLURM_CONF: slurmConf } });

  async function runToEnd(spec: MessageInitShape<typeof JobSpecSchema>) {
    const { job } = await client.submitJob({ spec: { backend: "slurm", ...spec } });
    const transitions = [];
    for await (const { transition } of client.watchJob({ name: job!.name })) transitions.push(transition!);
    return { name: job!.name, transitions, states: transitions.map((t) => t.state) };
  }
  async function output(name: string) {
    let text = "";
    for await (const chunk of client.streamJobLogs({ name, log: LogStream.STDOUT })) text += Buffer.from(chunk.data).toString();
    return text;
  }

  beforeAll(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), "lclstream-slurm-"));
    const { stdout } = await run(clusterScript, ["start", join(dir, "cluster")]);
    slurmConf = /SLURM_CONF=(\S+)/.exec(stdout)![1]!;
    await start();
  });
  afterAll(async () => {
    await server?.close();
    await run(clusterScript, ["stop", join(dir, "cluster")]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it("lists the backend as available", async () => {
    const { backends } = await client.listBackends({});
    expect(backends).toEqual([expect.objectContaining({ name: "slurm", available: true })]);
  });

  it("runs a batch job to COMPLETED, reporting its Slurm job id", async () => {
    const r = await runToEnd({ script: 'echo "hello from $jobid run $jobndx on $SLURM_JOB_PARTITION"' });
    expect(r.states).toEqual([State.NEW, State.QUEUED, State.ACTIVE, State.COMPLETED]);
    const { job } = await client.getJob({ name: r.name });
    expect(job!.backendJobId).toMatch(/^\d+$/);
    expect(r.transitions.at(-1)!.info).toBe(`exit code 0 (Slurm job ${job!.backendJobId})`);
    expect(await output(r.name)).toBe(`hello from ${r.name.slice(5)} run 1 on debug\n`);
  });

  it("starts several tasks with srun, each knowing its rank", async () => {
    const r = await runToEnd({
      script: "$mpirun bash -c 'echo \"rank $LCLSTREAM_RANK of $LCLSTREAM_RANK_COUNT\"'",
      resources: { processCount: 3, durationMinutes: 5 },
    });
    expect(r.states.at(-1)).toBe(State.COMPLETED);
    expect((await output(r.name)).trim().split("\n").sort()).toEqual(["rank 0 of 3", "rank 1 of 3", "rank 2 of 3"]);
  });

  it("ends a failing batch job FAILED with its exit code", async () => {
    const r = await runToEnd({ script: "exit 4" });
    expect(r.states.at(-1)).toBe(State.FAILED);
    expect((await client.getJob({ name: r.name })).job!.exitCode).toBe(4);
  });

  it("cancels a running batch job with scancel", async () => {
    const { job } = await client.submitJob({ spec: { backend: "slurm", script: "sleep 300" } });
    await expect.poll(async () => (await client.getJob({ name: job!.name })).job!.state, { timeout: 15_000 }).toBe(State.ACTIVE);
    const slurmId = (await client.getJob({ name: job!.name })).job!.backendJobId;
    await client.cancelJob({ name: job!.name });
    const states = [];
    for await (const { transition } of client.watchJob({ name: job!.name })) states.push(transition!.state);
    expect(states.at(-1)).toBe(State.CANCELED);
    expect((await slurm("squeue", "-h", "-j", slurmId, "-o", "%T")).stdout.trim()).toBe("");
  });

  it("after a restart of the job queue, ends each Slurm job in its real state", async () => {
    const finishes = await client.submitJob({ spec: { backend: "slurm", script: "sleep 1; echo finished" } });
    const killed = await client.submitJob({ spec: { backend: "slurm", script: "sleep 300" } });
    for (const { job } of [finishes, killed]) {
      await expect.poll(async () => (await client.getJob({ name: job!.name })).job!.state, { timeout: 15_000 }).toBe(State.ACTIVE);
    }
    const killedId = (await client.getJob({ name: killed.job!.name })).job!.backendJobId;
    await server.close();
    // While the job queue is down: one job finishes, the other is canceled behind its back.
    await slurm("scancel", killedId);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await start();

    const last = async (name: string) => {
      let t;
      for await (const { transition } of client.watchJob({ name })) t = transition;
      return t!;
    };
    expect(await last(finishes.job!.name)).toMatchObject({ state: State.COMPLETED });
    expect(await output(finishes.job!.name)).toBe("finished\n");
    const canceled = await last(killed.job!.name);
    expect(canceled.state).toBe(State.CANCELED);
    expect(canceled.info).toContain(`Slurm job ${killedId} CANCELLED`);
  });

  it("keeps a running job through a stop and restart of the Slurm controller, and ends it COMPLETED", async () => {
    const { job } = await client.submitJob({ spec: { backend: "slurm", script: "sleep 10; echo survived" } });
    await expect.poll(async () => (await client.getJob({ name: job!.name })).job!.state, { timeout: 15_000 }).toBe(State.ACTIVE);
    await run(clusterScript, ["stop-controller", join(dir, "cluster")]);
    // Several polls with the controller gone: squeue and scontrol fail (after the cluster's 2 s MessageTimeout), the job must not be called lost.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    expect((await client.getJob({ name: job!.name })).job!.state).toBe(State.ACTIVE);
    await run(clusterScript, ["start-controller", join(dir, "cluster")]);
    const states = [];
    for await (const { transition } of client.watchJob({ name: job!.name })) states.push(transition!.state);
    expect(states.at(-1)).toBe(State.COMPLETED);
    expect(await output(job!.name)).toBe("survived\n");
  }, 60_000);

  it("completes a data request whose producer is a Slurm job through a stop and restart of the controller, every event once", async () => {
    const mesh = await startLocalMesh({ stateDir: join(dir, "mesh"), jobBackends: [{ type: "slurm", env: { SLURM_CONF: slurmConf }, pollMs: 200 }] });
    try {
      const tls = await readCertDir(mesh.endpoints.certDir);
      const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
      // About 12 s of events, so the controller is away for a good part of the run.
      const producer = internalConfig(
        240,
        { tof: { type: "SyntheticDigitizer", channels: 1, samples: 64 } },
        { seed: 5, rateHz: 20, paced: true, batchSize: 4 },
      );
      const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer, backend: "slurm" } as never });
      let outage: Promise<void> | undefined;
      const controllerAway = async () => {
        await run(clusterScript, ["stop-controller", join(dir, "cluster")]);
        await new Promise((resolve) => setTimeout(resolve, 6000));
        await run(clusterScript, ["start-controller", join(dir, "cluster")]);
      };
      const { totals, progress } = await fetchRequest({
        requests,
        transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }),
        name: dataRequest!.name,
        signal: new AbortController().signal,
        onProgress: (p) => void (outage ??= p.batches >= 5 ? controllerAway() : undefined),
      });
      await outage;
      expect(outage, "the controller was stopped mid-stream").toBeDefined();
      expect(totals).toMatchObject({ batchCount: 60n, eventCount: 240n });
      expect(progress.events).toBe(240);
      await expect
        .poll(async () => (await requests.getDataRequest({ name: dataRequest!.name })).dataRequest!.state, { timeout: 30_000 })
        .toBe(RequestState.SUCCEEDED);
    } finally {
      await mesh.close();
    }
  }, 90_000);

  it("accepts psik's multi-node and GPU examples unchanged with lclstream jobs submit, on a Slurm backend named as they name it", async () => {
    // The cluster's big partition: two 64-core, 4-GPU nodes that never come up, so the jobs are taken and wait.
    const queue = await startJobQueueCli(`backends:\n  defiant: {type: slurm, queue_name: big, pollMs: 200, env: {SLURM_CONF: "${slurmConf}"}}\n`);
    try {
      const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/psik/${name}`, import.meta.url));
      const submitted: Record<string, string> = {};
      for (const f of ["example.yaml", "readme-python-jobspec.json"]) {
        const r = await queue.jobs(["submit", fixture(f)]);
        expect(r.stderr, f).toBe("");
        submitted[f] = r.stdout.trim();
      }
      const slurmJob = async (name: string) => {
        const job = JSON.parse((await queue.jobs(["get", name])).stdout);
        expect(job).toMatchObject({ state: "STATE_QUEUED", spec: { backend: "defiant" } });
        const shown = (await slurm("scontrol", "show", "job", "-o", job.backend_job_id)).stdout;
        return Object.fromEntries(
          shown
            .trim()
            .split(/\s+/)
            .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
        );
      };
      await expect
        .poll(async () => JSON.parse((await queue.jobs(["get", submitted["example.yaml"]!])).stdout).backend_job_id, { timeout: 15_000 })
        .toMatch(/^\d+$/);
      // example.yaml: duration 30, 2 nodes, 4 processes per node, 16 cores each (psik's salloc -t30 -N2 --ntasks-per-node 4 -c16).
      expect(await slurmJob(submitted["example.yaml"]!)).toMatchObject({
        JobState: "PENDING",
        Partition: "big",
        TimeLimit: "00:30:00",
        NumNodes: "2-2",
        NumTasks: "8",
        "CPUs/Task": "16",
      });
      // The README's Python example: 60 minutes ("60", as it writes it), 2 processes with a GPU each.
      expect(await slurmJob(submitted["readme-python-jobspec.json"]!)).toMatchObject({
        JobState: "PENDING",
        TimeLimit: "01:00:00",
        NumTasks: "2",
        TresPerTask: "gres:gpu:1",
      });
      for (const name of Object.values(submitted)) {
        await queue.jobs(["cancel", name]);
        expect((await queue.watch(name)).at(-1)![2]).toBe("CANCELED");
      }
    } finally {
      await queue.close();
    }
  }, 60_000);
});
