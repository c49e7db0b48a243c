import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { errorInfo, badRequest, invalidArgument, rpcError } from "../../services/common/errors.js";
import { createGrpcJsClient, grpcJsCredentials } from "../helpers/grpc-js.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { clientFor, startServer } from "../helpers/servers.js";

const maxMessageBytes = 64 * 1024;

const jobs = serve(JobQueueService, {
  submitJob: (req) => ({ job: { name: "jobs/1", spec: req.spec } }),
  getJob: (req) => {
    if (req.name === "jobs/bug") throw new TypeError("cannot read properties of undefined (secret detail)");
    if (req.name === "jobs/bad") throw invalidArgument("lclstream.jobs", [{ field: "name", description: "must look like jobs/{id}" }]);
    if (req.name.length > 1000) throw rpcError(Code.NotFound, "lclstream.jobs", "JOB_NOT_FOUND", `no job ${req.name}`, { metadata: { name: req.name } });
    return { job: { name: req.name } };
  },
});

describe("message limits and errors", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let raw: grpc.Client;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, { services: [jobs], maxMessageBytes, metricsPort: 0 });
    raw = new grpc.Client(`127.0.0.1:${server.port}`, grpcJsCredentials(pki.alice));
  });
  afterAll(async () => {
    raw.close();
    await server.close();
  });

  async function stillServes() {
    const { job } = await clientFor(JobQueueService, server, pki.alice).getJob({ name: "jobs/ok" });
    expect(job?.name).toBe("jobs/ok");
  }

  it("answers a message over the limit with RESOURCE_EXHAUSTED naming the limit, then keeps serving", async () => {
    const call = clientFor(JobQueueService, server, pki.alice).submitJob({ spec: { script: "x".repeat(maxMessageBytes + 1) } });
    const error = await call.then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.rawMessage).toContain(String(maxMessageBytes));
    expect(errorInfo(error!)?.reason).toBe("MESSAGE_TOO_LARGE");
    await stillServes();
  });

  it("tells grpc-js clients the same", async () => {
    const client = createGrpcJsClient(JobQueueService, `127.0.0.1:${server.port}`, grpcJsCredentials(pki.alice));
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      (client as any).submitJob({ spec: { script: "y".repeat(maxMessageBytes * 2) } }, (e: grpc.ServiceError) => resolve(e)),
    );
    client.close();
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error.details).toContain(`${maxMessageBytes} bytes`);
  });

  it("answers bytes that are not a valid message with INVALID_ARGUMENT, then keeps serving", async () => {
    // Field 1 (spec) as length-delimited, claiming 100 bytes but carrying 2.
    const garbage = Buffer.from([0x0a, 0x64, 0x01, 0x02]);
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        "/lclstream.jobs.v1.JobQueueService/SubmitJob",
        (b: Buffer) => b,
        (b: Buffer) => b,
        garbage,
        (e) => resolve(e!),
      ),
    );
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain("lclstream.jobs.v1.SubmitJobRequest");
    await stillServes();
  });

  it("answers an unknown method with UNIMPLEMENTED", async () => {
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        "/lclstream.jobs.v1.JobQueueService/Nope",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (e) => resolve(e!),
      ),
    );
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("hides an unexpected error's detail behind INTERNAL", async () => {
    const error = await clientFor(JobQueueService, server, pki.alice)
      .getJob({ name: "jobs/bug" })
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.Internal);
    expect(error?.rawMessage).toBe("internal error");
    expect(error?.rawMessage).not.toContain("secret");
  });

  it("sends ErrorInfo and BadRequest details with INVALID_ARGUMENT", async () => {
    const error = await clientFor(JobQueueService, server, pki.alice)
      .getJob({ name: "jobs/bad" })
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(errorInfo(error!)).toMatchObject({ reason: "INVALID_ARGUMENT", domain: "lclstream.jobs" });
    expect(badRequest(error!)?.fieldViolations[0]).toMatchObject({ field: "name", description: "must look like jobs/{id}" });
  });

  it("clips an error that quotes a huge request back, so it still fits in the trailers", async () => {
    const error = await clientFor(JobQueueService, server, pki.alice)
      // Within the request bounds (4096 characters), longer than an error quotes.
      .getJob({ name: `jobs/${"x".repeat(4000)}` })
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.NotFound);
    expect(error!.rawMessage.length).toBeLessThan(1200);
    expect(error!.rawMessage).toMatch(/… \(4012 characters\)$/);
    expect(errorInfo(error!)?.metadata.name?.length).toBeLessThan(300);
    await stillServes();
  });

  it("counts calls by code on the Prometheus endpoint", async () => {
    const text = await (await fetch(server.metricsUrl!)).text();
    expect(text).toMatch(/lclstream_rpc_calls_total\{[^}]*method="GetJob"[^}]*code="Internal"[^}]*\} 1/);
    expect(text).toMatch(/lclstream_rpc_calls_total\{[^}]*method="GetJob"[^}]*code="OK"[^}]*\} [1-9]/);
    expect(text).toContain("lclstream_process_resident_memory_bytes");
  });
});
