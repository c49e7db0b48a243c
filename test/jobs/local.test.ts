/** The job queue with the local backend, over real mTLS: runs, logs, failures, cancel, ranks, restarts, ownership. */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient, type Client } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { createGrpcJsClient, grpcJsCredentials } from "../helpers/grpc-js.js";
import { collect, unary } from "../helpers/grpc-js.js";
import { JobQueueService, Job_State as State, LogStream, type SubmitJobResponse, type WatchJobResponse } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { JobSpecSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import type { CertMaterial } from "../../services/common/pki.js";
import { build, type JobsServer } from "../../services/jobs/server.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { failure } from "../helpers/errors.js";

type Spec = MessageInitShape<typeof JobSpecSchema>;

describe("job queue, local backend", () => {
  let pki: TestPki;
  let stateDir: string;
  let server: JobsServer;
  const clientOf = (tls: CertMaterial): Client<typeof JobQueueService> => createClient(JobQueueService, createMeshTransport({ baseUrl: server.url, tls }));
  const alice = () => clientOf(pki.alice);
  const start = () => build({ stateDir, submitters: ["user/alice", "user/bob"], admins: ["user/admin"] }, { tls: pki.server });

  /** Submits as alice and follows WatchJob to the end; returns the job name and its states. */
  async function runToEnd(spec: Spec, client = alice()) {
    const { job } = await client.submitJob({ spec });
    const transitions = [];
    for await (const { transition } of client.watchJob({ name: job!.name })) transitions.push(transition!);
    return { name: job!.name, transitions, states: transitions.map((t) => t.state) };
  }
  async function output(name: string, log = LogStream.STDOUT, jobndx = 0) {
    let text = "";
    for await (const chunk of alice().streamJobLogs({ name, log, jobndx })) text += Buffer.from(chunk.data).toString();
    return text;
  }

  beforeAll(async () => {
    pki = await createTestPki();
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-jobs-"));
    server = await start();
  });
  afterAll(async () => {
    await server?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("lists the local backend", async () => {
    const { backends } = await alice().listBackends({});
    expect(backends).toEqual([expect.objectContaining({ name: "local", available: true })]);
  });

  it("runs a job: NEW, QUEUED, ACTIVE, COMPLETED in order, with $jobid, $jobndx, $base and the work directory", async () => {
    const run = await runToEnd({ name: "hello", script: 'echo "id=$jobid ndx=$jobndx base=$base"; pwd; echo oops >&2', environment: { GREETING: "hi" } });
    expect(run.states).toEqual([State.NEW, State.QUEUED, State.ACTIVE, State.COMPLETED]);
    expect(run.transitions.every((t) => t.jobndx === 1)).toBe(true);
    const id = run.name.slice("jobs/".length);
    const base = join(stateDir, "jobs", id);
    expect(await output(run.name)).toBe(`id=${id} ndx=1 base=${base}\n${join(base, "work")}\n`);
    expect(await output(run.name, LogStream.STDERR)).toBe("oops\n");
    const { job } = await alice().getJob({ name: run.name });
    expect(job).toMatchObject({ state: State.COMPLETED, exitCode: 0, owner: pki.uri("user", "alice") });
    expect(job!.transitions).toHaveLength(4);
  });

  it("answers the reference gRPC client (grpc-js): SubmitJob, then WatchJob to the end", async () => {
    const client = createGrpcJsClient(JobQueueService, new URL(server.url).host, grpcJsCredentials(pki.alice));
    try {
      const { job } = await unary<SubmitJobResponse>(client, "submitJob", { spec: { script: "echo grpc-js" } });
      const watched = await collect<WatchJobResponse>(client.watchJob!({ name: job!.name }) as grpc.ClientReadableStream<unknown>);
      expect(watched.map((w) => w.transition!.state)).toEqual([State.NEW, State.QUEUED, State.ACTIVE, State.COMPLETED]);
    } finally {
      client.close();
    }
  });

  it("streams logs while the job runs, and the follow stream ends when it does", async () => {
    const { job } = await alice().submitJob({ spec: { script: "for i in 1 2 3; do echo line$i; sleep 0.4; done" } });
    let text = "";
    let stateAtFirstChunk: State | undefined;
    for await (const chunk of alice().streamJobLogs({ name: job!.name, follow: true })) {
      stateAtFirstChunk ??= (await alice().getJob({ name: job!.name })).job!.state;
      text += Buffer.from(chunk.data).toString();
    }
    expect(stateAtFirstChunk).toBe(State.ACTIVE);
    expect(text).toBe("line1\nline2\nline3\n");
    expect((await alice().getJob({ name: job!.name })).job!.state).toBe(State.COMPLETED);
  });

  it("refuses to stream a log the job swapped for a link to another file", async () => {
    const secret = join(stateDir, "not-for-the-job.txt");
    await writeFile(secret, "the service's secret\n");
    const run = await runToEnd({ script: `echo hello; ln -sf ${secret} "$base/logs/$jobndx.stdout"` });
    expect(run.states.at(-1)).toBe(State.COMPLETED);
    expect(await failure(output(run.name))).toMatchObject({ code: Code.FailedPrecondition, reason: "LOG_IS_A_LINK" });
  });

  it("ends a failing script FAILED with its exit code", async () => {
    const run = await runToEnd({ script: "echo before; exit 3" });
    expect(run.states).toEqual([State.NEW, State.QUEUED, State.ACTIVE, State.FAILED]);
    expect(run.transitions.at(-1)!.info).toBe("exit code 3");
    expect((await alice().getJob({ name: run.name })).job!.exitCode).toBe(3);
  });

  it("cancels the whole process group: no process of the job is left", async () => {
    const marker = `lclstream-orphan-${process.pid}-${Date.now()}`;
    const { job } = await alice().submitJob({ spec: { script: `(exec -a ${marker} sleep 300) & (exec -a ${marker} sleep 301) & echo started; wait` } });
    const logs = alice().streamJobLogs({ name: job!.name, follow: true })[Symbol.asyncIterator]();
    expect(Buffer.from((await logs.next()).value!.data).toString()).toContain("started");
    expect(execFileSync("pgrep", ["-c", "-f", marker]).toString().trim()).toBe("2");

    const canceled = await alice().cancelJob({ name: job!.name });
    expect(canceled.job!.name).toBe(job!.name);
    const states = [];
    for await (const { transition } of alice().watchJob({ name: job!.name })) states.push(transition!.state);
    expect(states.at(-1)).toBe(State.CANCELED);
    await expect
      .poll(() => {
        try {
          return execFileSync("pgrep", ["-c", "-f", marker]).toString().trim();
        } catch {
          return "0"; // pgrep exits 1 when nothing matches
        }
      })
      .toBe("0");
    await logs.return?.();
    expect(await failure(alice().cancelJob({ name: job!.name }))).toMatchObject({ code: Code.FailedPrecondition, reason: "JOB_ALREADY_ENDED" });
  });

  it("runs a script under its shebang's interpreter, and under bash without one", async () => {
    const python = await runToEnd({ script: '#!/usr/bin/env python3\nimport sys\nprint("python", sys.version_info[0])' });
    expect(python.states.at(-1)).toBe(State.COMPLETED);
    expect(await output(python.name)).toBe("python 3\n");
    // dash, not bash: BASH_VERSION is bash's own.
    const sh = await runToEnd({ script: '#!/bin/sh\necho "bash=${BASH_VERSION:-none}"' });
    expect(await output(sh.name)).toBe("bash=none\n");
    const plain = await runToEnd({ script: 'echo "bash=${BASH_VERSION:+yes}"' });
    expect(await output(plain.name)).toBe("bash=yes\n");
  });

  it("starts process_count ranks with $mpirun, each knowing its rank and the count", async () => {
    const run = await runToEnd({ script: "$mpirun bash -c 'echo \"rank $LCLSTREAM_RANK of $LCLSTREAM_RANK_COUNT\"'", resources: { processCount: 3 } });
    expect(run.states.at(-1)).toBe(State.COMPLETED);
    expect((await output(run.name)).trim().split("\n").sort()).toEqual(["rank 0 of 3", "rank 1 of 3", "rank 2 of 3"]);
  });

  it("fails the launcher when one rank fails, stopping the others", async () => {
    const run = await runToEnd({ script: "$mpirun bash -c '[ \"$LCLSTREAM_RANK\" = 1 ] && exit 7; sleep 30'", resources: { processCount: 3 } });
    expect(run.states.at(-1)).toBe(State.FAILED);
    expect(run.transitions.at(-1)!.info).toBe("exit code 7");
  });

  it("restarts a failed job as a new run while restarts remain", async () => {
    const run = await runToEnd({ script: 'echo "run $jobndx"; [ "$jobndx" -ge 3 ]', maxRestarts: 5 });
    expect(run.states).toEqual([
      State.NEW,
      State.QUEUED,
      State.ACTIVE,
      State.FAILED,
      State.QUEUED,
      State.ACTIVE,
      State.FAILED,
      State.QUEUED,
      State.ACTIVE,
      State.COMPLETED,
    ]);
    expect(run.transitions.map((t) => t.jobndx)).toEqual([1, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    expect(await output(run.name, LogStream.STDOUT, 2)).toBe("run 2\n");
    expect(await output(run.name)).toBe("run 3\n");
  });

  it("never gives a job the service's environment: inherit_environment passes only ordinary variables", async () => {
    process.env.LCLSTREAM_TEST_SECRET = "from-the-service";
    try {
      const isolated = await runToEnd({
        script: 'echo "[$LCLSTREAM_TEST_SECRET] [$MINE]"; command -v node >/dev/null && echo node',
        environment: { MINE: "x y" },
      });
      expect(await output(isolated.name)).toBe("[] [x y]\nnode\n");
      const inherited = await runToEnd({ script: 'echo "[$LCLSTREAM_TEST_SECRET] [$LANG] $nodes"', inheritEnvironment: true });
      expect(await output(inherited.name)).toBe(`[] [${process.env.LANG ?? ""}] 1\n`);
      expect(inherited.transitions[0]!.info).toContain("not its whole environment as psik would");
    } finally {
      delete process.env.LCLSTREAM_TEST_SECRET;
    }
  });

  it("returns the same job for a repeated request_id", async () => {
    const first = await alice().submitJob({ spec: { script: "true" }, requestId: "req-42" });
    const again = await alice().submitJob({ spec: { script: "true" }, requestId: "req-42" });
    expect(again.job!.name).toBe(first.job!.name);
  });

  it("refuses a bad JobSpec, naming every bad field", async () => {
    const bad = await failure(
      alice().submitJob({
        spec: {
          script: " ",
          backend: "local",
          directory: "../../etc",
          environment: { "1BAD": "x", jobid: "mine" },
          resources: { nodeCount: 2, processCount: 4_000_000_000, processesPerNode: 1 },
        },
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.fields).toEqual(
      expect.arrayContaining([
        "spec.script",
        "spec.directory",
        'spec.environment["1BAD"]',
        'spec.environment["jobid"]',
        "spec.resources.process_count",
        "spec.resources.processes_per_node",
        "spec.resources.node_count",
      ]),
    );
    const backend = await failure(alice().submitJob({ spec: { script: "true", backend: "cray" } }));
    expect(backend).toMatchObject({ code: Code.InvalidArgument, fields: ["spec.backend"] });
    expect(await failure(alice().submitJob({}))).toMatchObject({ code: Code.InvalidArgument, fields: ["spec"] });
    expect(await failure(alice().getJob({ name: "../jobs" }))).toMatchObject({ code: Code.InvalidArgument, fields: ["name"] });
  });

  it("keeps jobs to their owners: others get NOT_FOUND, admins see everything, only submitters submit", async () => {
    const { job } = await alice().submitJob({ spec: { script: "sleep 0.2" } });
    const bob = clientOf(pki.bob);
    expect(await failure(bob.getJob({ name: job!.name }))).toMatchObject({ code: Code.NotFound, reason: "JOB_NOT_FOUND" });
    expect(await failure(bob.cancelJob({ name: job!.name }))).toMatchObject({ code: Code.NotFound, reason: "JOB_NOT_FOUND" });
    expect(await failure(bob.streamJobLogs({ name: job!.name })[Symbol.asyncIterator]().next())).toMatchObject({ code: Code.NotFound });
    expect(await failure(bob.watchJob({ name: job!.name })[Symbol.asyncIterator]().next())).toMatchObject({ code: Code.NotFound });
    expect((await bob.listJobs({})).jobs.map((j) => j.name)).not.toContain(job!.name);
    expect(await failure(bob.listJobs({ owner: "user/alice" }))).toMatchObject({ code: Code.PermissionDenied, reason: "ADMIN_REQUIRED" });

    const admin = clientOf(pki.admin);
    expect((await admin.getJob({ name: job!.name })).job!.owner).toBe(pki.uri("user", "alice"));
    expect((await admin.listJobs({ owner: "user/alice", pageSize: 1000 })).jobs.map((j) => j.name)).toContain(job!.name);

    const proxy = clientOf(pki.proxy); // a valid identity that the policy does not let submit
    expect(await failure(proxy.submitJob({ spec: { script: "true" } }))).toMatchObject({ code: Code.PermissionDenied, reason: "SUBMIT_NOT_ALLOWED" });
  });

  it("lists jobs by state, page by page", async () => {
    const completed = (await alice().listJobs({ state: State.COMPLETED, pageSize: 1000 })).jobs;
    expect(completed.length).toBeGreaterThanOrEqual(3);
    expect(completed.every((j) => j.state === State.COMPLETED)).toBe(true);
    const names: string[] = [];
    let pageToken = "";
    do {
      const page = await alice().listJobs({ pageSize: 2, pageToken });
      expect(page.jobs.length).toBeLessThanOrEqual(2);
      names.push(...page.jobs.map((j) => j.name));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(names).toEqual((await alice().listJobs({ pageSize: 1000 })).jobs.map((j) => j.name));
    expect(await failure(alice().listJobs({ pageToken: "nonsense" }))).toMatchObject({ code: Code.InvalidArgument, fields: ["page_token"] });
  });

  it("finds running jobs again after a restart, and fails those that vanished while it was down", async () => {
    const survivor = await alice().submitJob({ spec: { script: "sleep 1.5; echo survived" } });
    const victim = await alice().submitJob({ spec: { script: "sleep 30" } });
    await expect.poll(async () => (await alice().getJob({ name: victim.job!.name })).job!.state).toBe(State.ACTIVE);
    const victimPid = Number((await alice().getJob({ name: victim.job!.name })).job!.backendJobId);

    await server.close();
    process.kill(-victimPid, "SIGKILL"); // dies while nobody watches
    server = await start();

    const states = async (name: string) => {
      const transitions = [];
      for await (const { transition } of alice().watchJob({ name })) transitions.push(transition!);
      return transitions;
    };
    const survived = await states(survivor.job!.name);
    expect(survived.at(-1)).toMatchObject({ state: State.COMPLETED, info: "exit code 0" });
    expect(await output(survivor.job!.name)).toBe("survived\n");
    const vanished = await states(victim.job!.name);
    expect(vanished.at(-1)!.state).toBe(State.FAILED);
    expect(vanished.at(-1)!.info).toContain("without reporting an exit code");
  });
});
