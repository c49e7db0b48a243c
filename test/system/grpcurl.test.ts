/** grpcurl, with reflection only (no proto files), against a real mTLS server. */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { callerOf } from "../../services/common/peer.js";
import { writeCertDir } from "../../services/common/pki.js";
import { createTestPki, trustDomain, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";
import { internalConfig } from "../helpers/producer-config.js";
import { run, tool } from "../helpers/tools.js";

describe("grpcurl over mTLS with reflection", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let dir: string;
  let grpcurl: (...args: string[]) => ReturnType<typeof run>;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      services: [serve(JobQueueService, { getJob: (req, ctx) => ({ job: { name: req.name, owner: callerOf(ctx).uri, state: 3 } }) }), serve(BufferService, {})],
    });
    dir = await mkdtemp(join(tmpdir(), "lclstream-grpcurl-"));
    await writeCertDir(join(dir, "alice"), pki.alice);
    const bin = tool("grpcurl");
    const c = join(dir, "alice");
    grpcurl = (...args) => run(bin, ["-cacert", join(c, "ca.crt"), "-cert", join(c, "tls.crt"), "-key", join(c, "tls.key"), ...args]);
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("lists the services", async () => {
    const { code, stdout } = await grpcurl(`127.0.0.1:${server.port}`, "list");
    expect(code).toBe(0);
    expect(stdout.trim().split("\n")).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "lclstream.buffer.v1.BufferService",
      "lclstream.jobs.v1.JobQueueService",
    ]);
  });

  it("describes a service and a message from another file", async () => {
    const service = await grpcurl(`127.0.0.1:${server.port}`, "describe", "lclstream.buffer.v1.BufferService");
    expect(service.code).toBe(0);
    expect(service.stdout).toContain("rpc Subscribe ( .lclstream.buffer.v1.SubscribeRequest ) returns ( stream .lclstream.buffer.v1.SubscribeResponse );");
    const message = await grpcurl(`127.0.0.1:${server.port}`, "describe", "lclstream.data.v1.EventBatch");
    expect(message.code).toBe(0);
    expect(message.stdout).toMatch(/repeated uint64 event_indices = 4/);
  });

  it("calls health", async () => {
    const { code, stdout } = await grpcurl(`127.0.0.1:${server.port}`, "grpc.health.v1.Health/Check");
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });

  it("calls a method with JSON and sees the caller's identity", async () => {
    const { code, stdout } = await grpcurl("-d", '{"name": "jobs/7"}', `127.0.0.1:${server.port}`, "lclstream.jobs.v1.JobQueueService/GetJob");
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ job: { name: "jobs/7", owner: `spiffe://${trustDomain}/user/alice`, state: "STATE_ACTIVE" } });
  });

  it("fails without a client certificate", async () => {
    const args = ["-connect-timeout", "3", "-cacert", join(dir, "alice", "ca.crt"), `127.0.0.1:${server.port}`, "list"];
    const { code, stderr } = await run(tool("grpcurl"), args);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/Failed to dial|certificate/i);
  });
});

describe("grpcurl against the whole mesh: a data request made and streamed with JSON", () => {
  let dir: string;
  let mesh: LocalMesh;
  let tlsArgs: string[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-grpcurl-mesh-"));
    mesh = await startLocalMesh({ stateDir: dir });
    const c = mesh.endpoints.certDir;
    tlsArgs = ["-cacert", join(c, "ca.crt"), "-cert", join(c, "tls.crt"), "-key", join(c, "tls.key")];
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const host = (url: string) => new URL(url).host;

  it("lists and describes the enrollment port, and checks its health, with no client certificate", async () => {
    const enroll = host(mesh.endpoints.enroll);
    const trustOnly = ["-cacert", join(mesh.endpoints.certDir, "ca.crt")];
    const list = await run(tool("grpcurl"), [...trustOnly, enroll, "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain("lclstream.ca.v1.CertificateAuthorityService");
    const describe = await run(tool("grpcurl"), [...trustOnly, enroll, "describe", "lclstream.ca.v1.CertificateAuthorityService.Enroll"]);
    expect(describe.code, describe.stderr).toBe(0);
    const health = await run(tool("grpcurl"), [...trustOnly, enroll, "grpc.health.v1.Health/Check"]);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
  });

  it("reads the job queue's refusals of a psik callback it may not send and of starting a running job", async () => {
    const jobs = host(mesh.endpoints.jobs);
    const call = (method: string, body: unknown) =>
      run(tool("grpcurl"), [...tlsArgs, "-format-error", "-d", JSON.stringify(body), jobs, `lclstream.jobs.v1.JobQueueService/${method}`]);
    const details = (stderr: string) => JSON.parse(stderr) as { code: number; message: string; details: Record<string, any>[] };
    // Loopback is allowed on `lclstream up`; another host is not.
    const far = details((await call("SubmitJob", { spec: { script: "true", callback: "http://10.1.2.3/hook" } })).stderr);
    expect(far.code).toBe(3);
    const violations = far.details.find((d) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest")!.fieldViolations;
    expect(violations).toEqual([{ field: "spec.callback", description: expect.stringContaining("goes nowhere this job queue sends callbacks") }]);
    const submitted = await call("SubmitJob", { spec: { script: "sleep 30", callback: "http://127.0.0.1:9/hook", cb_secret: "s" } });
    expect(submitted.code, submitted.stderr).toBe(0);
    const job = JSON.parse(submitted.stdout).job;
    expect(job.spec.cbSecret).toBe("*****");
    const running = details((await call("StartJob", { name: job.name })).stderr);
    expect(running.code).toBe(9);
    expect(running.message).toContain("only a finished job can be started again");
    expect(running.details.find((d) => d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo")?.reason).toBe("JOB_NOT_ENDED");
    expect((await call("CancelJob", { name: job.name })).code).toBe(0);
  });

  it("creates a request, subscribes, acknowledges each batch with another call, and gets the end of stream", async () => {
    const request = {
      data_request: {
        producer: internalConfig(12, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 32 } }, { seed: 4, batchSize: 4 }),
      },
    };
    const created = await run(tool("grpcurl"), [
      ...tlsArgs,
      "-d",
      JSON.stringify(request),
      host(mesh.endpoints.request),
      "lclstream.request.v1.DataRequestService/CreateDataRequest",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const name = JSON.parse(created.stdout).dataRequest.name as string;
    let stream = "";
    for (let i = 0; i < 100 && !stream; i++) {
      const got = await run(tool("grpcurl"), [
        ...tlsArgs,
        "-d",
        JSON.stringify({ name }),
        host(mesh.endpoints.request),
        "lclstream.request.v1.DataRequestService/GetDataRequest",
      ]);
      stream = JSON.parse(got.stdout).dataRequest.stream ?? "";
      if (!stream) await new Promise((r) => setTimeout(r, 100));
    }
    expect(stream).toMatch(/^streams\//);

    // Subscribe in one grpcurl; acknowledge what it prints with others; it ends with the end of stream.
    const subscriber = spawn(tool("grpcurl"), [
      ...tlsArgs,
      "-d",
      JSON.stringify({ stream, consumer_group: "default" }),
      host(mesh.endpoints.buffer),
      "lclstream.buffer.v1.BufferService/Subscribe",
    ]);
    let out = "";
    let parsed = 0;
    const messages: any[] = [];
    const acks: Promise<unknown>[] = [];
    subscriber.stdout.on("data", (d) => {
      out += d;
      const complete = out.split(/\n}\n/);
      for (const text of complete.slice(parsed, -1)) {
        const message = JSON.parse(`${text}\n}`);
        messages.push(message);
        if (message.batch) {
          const ack = { stream, consumer_group: "default", consumer_id: messages[0].started.consumerId, seqs: [message.seq] };
          acks.push(run(tool("grpcurl"), [...tlsArgs, "-d", JSON.stringify(ack), host(mesh.endpoints.buffer), "lclstream.buffer.v1.BufferService/Ack"]));
        }
      }
      parsed = complete.length - 1;
    });
    const code = await new Promise<number | null>((resolve) => subscriber.once("exit", resolve));
    await Promise.all(acks);
    expect(code).toBe(0);
    expect(messages[0].started.consumerGroup).toBe("default");
    const batches = messages.filter((m) => m.batch);
    expect(batches.map((m) => Number(m.seq)).sort()).toEqual([1, 2, 3]);
    expect(batches[0].batch.columns.fields.tof.shape).toEqual(["4", "1", "32"]);
    expect(messages.at(-1).endOfStream).toMatchObject({ batchCount: "3", eventCount: "12" });
  }, 60_000);
});
