/** grpcurl, with reflection only (no proto files), against a real mTLS server. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { callerOf } from "../../services/common/peer.js";
import { writeCertDir } from "../../services/common/pki.js";
import { createTestPki, trustDomain, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";
import { run, tool } from "../helpers/tools.js";

describe("grpcurl over mTLS with reflection", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let dir: string;
  let grpcurl: (...args: string[]) => ReturnType<typeof run>;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      services: [
        serve(JobQueueService, { getJob: (req, ctx) => ({ job: { name: req.name, owner: callerOf(ctx).uri, state: 3 } }) }),
        serve(BufferService, {}),
      ],
    });
    dir = await mkdtemp(join(tmpdir(), "lclstream-grpcurl-"));
    await writeCertDir(join(dir, "alice"), pki.alice);
    const bin = tool("grpcurl");
    const c = join(dir, "alice");
    grpcurl = (...args) =>
      run(bin, ["-cacert", join(c, "ca.crt"), "-cert", join(c, "tls.crt"), "-key", join(c, "tls.key"), ...args]);
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
