import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createFileRegistry, fromBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { createGrpcJsClient, grpcJsCredentials } from "../helpers/grpc-js.js";
import { createMeshTransport } from "../../services/common/client.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";

describe("health and reflection", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, { services: [serve(BufferService, {}), serve(DataRequestService, {})] });
  });
  afterAll(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });

  const health = () => createClient(Health, createMeshTransport({ baseUrl: server.url, tls: pki.alice }));

  it("Check answers SERVING for the server and each service, NOT_FOUND for others", async () => {
    expect((await health().check({ service: "" })).status).toBe(Status.SERVING);
    expect((await health().check({ service: "lclstream.buffer.v1.BufferService" })).status).toBe(Status.SERVING);
    await expect(health().check({ service: "nope.Service" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("Watch sends the state now and every change", async () => {
    const service = "lclstream.request.v1.DataRequestService";
    const abort = new AbortController();
    const seen: Status[] = [];
    try {
      for await (const res of health().watch({ service }, { signal: abort.signal })) {
        seen.push(res.status);
        if (seen.length === 1) server.health.set(service, Status.NOT_SERVING);
        if (seen.length === 2) server.health.set(service, Status.SERVING);
        if (seen.length === 3) abort.abort();
      }
    } catch (error) {
      expect(ConnectError.from(error).code).toBe(Code.Canceled);
    }
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING]);
  });

  /** Asks a grpc-js reflection client a list of questions on one stream. */
  async function reflect(service: DescService, requests: object[]): Promise<any[]> {
    const client = createGrpcJsClient(service, `127.0.0.1:${server.port}`, grpcJsCredentials(pki.alice));
    clients.push(client);
    const call = (client as any).serverReflectionInfo() as grpc.ClientDuplexStream<object, any>;
    const answers: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (a) => answers.push(a));
      call.on("error", reject);
      call.on("end", resolve);
    });
    requests.forEach((r) => call.write(r));
    call.end();
    await done;
    return answers;
  }

  for (const [version, service] of [
    ["v1", reflectionV1.ServerReflection],
    ["v1alpha", reflectionV1alpha.ServerReflection],
  ] as const) {
    it(`${version} lists the services and returns complete file descriptors`, async () => {
      const [list, byService, byMethod, byFile, missing, errorInfo, badRequest] = await reflect(service, [
        { messageRequest: { case: "listServices", value: "" } },
        { messageRequest: { case: "fileContainingSymbol", value: "lclstream.buffer.v1.BufferService" } },
        { messageRequest: { case: "fileContainingSymbol", value: "lclstream.request.v1.DataRequestService.CreateDataRequest" } },
        { messageRequest: { case: "fileByFilename", value: "lclstream/data/v1/data.proto" } },
        { messageRequest: { case: "fileContainingSymbol", value: "lclstream.nothing.v1.Nope" } },
        // Error details travel as Any: a client needs their descriptors to print them.
        { messageRequest: { case: "fileContainingSymbol", value: "google.rpc.ErrorInfo" } },
        { messageRequest: { case: "fileContainingSymbol", value: "google.rpc.BadRequest" } },
      ]);
      for (const answer of [errorInfo, badRequest]) {
        expect(fromBinary(FileDescriptorProtoSchema, answer.messageResponse.value.fileDescriptorProto[0]).name).toBe("google/rpc/error_details.proto");
      }
      expect(list.messageResponse.value.service.map((s: { name: string }) => s.name)).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "lclstream.buffer.v1.BufferService",
        "lclstream.request.v1.DataRequestService",
      ]);

      const files = byService.messageResponse.value.fileDescriptorProto.map((b: Uint8Array) => fromBinary(FileDescriptorProtoSchema, b));
      expect(files[0].name).toBe("lclstream/buffer/v1/buffer.proto");
      expect(files.map((f: { name: string }) => f.name)).toEqual(expect.arrayContaining(["lclstream/data/v1/data.proto", "google/protobuf/timestamp.proto"]));
      // The descriptors are complete: a registry builds from them alone.
      const registry = createFileRegistry(files[0], (name) => files.find((f: { name: string }) => f.name === name));
      expect(registry.getService("lclstream.buffer.v1.BufferService")?.methods.map((m) => m.name)).toContain("Subscribe");

      const methodFile = fromBinary(FileDescriptorProtoSchema, byMethod.messageResponse.value.fileDescriptorProto[0]);
      expect(methodFile.name).toBe("lclstream/request/v1/request.proto");
      expect(fromBinary(FileDescriptorProtoSchema, byFile.messageResponse.value.fileDescriptorProto[0]).name).toBe("lclstream/data/v1/data.proto");
      expect(missing.messageResponse.case).toBe("errorResponse");
      expect(missing.messageResponse.value.errorCode).toBe(Code.NotFound);
    });
  }
});
