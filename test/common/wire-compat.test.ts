/**
 * Wire compatibility: the reference gRPC implementation (@grpc/grpc-js), with
 * messages encoded by protobufjs from the .proto files (an encoder independent
 * of the generated code), calls one RPC of every service on a connect-node server.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { DataType } from "../../gen/lclstream/data/v1/data_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { callerOf } from "../../services/common/peer.js";
import { grpcJsChannelOptions, grpcJsCredentials } from "../helpers/grpc-js.js";
import { createTestPki, trustDomain, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";
import { collect, unary } from "../helpers/grpc-js.js";

const protoRoot = fileURLToPath(new URL("../../proto", import.meta.url));
const files = ["ca", "jobs", "buffer", "producer", "request"].map((area) => `lclstream/${area}/v1/${area}.proto`);

/** Test implementations that echo what they received, so both directions are checked. */
const services = [
  serve(CertificateAuthorityService, {
    getTrustBundle: () => ({ trustDomain, caCertificatesPem: ["-----BEGIN CERTIFICATE-----"] }),
  }),
  serve(JobQueueService, {
    submitJob: (req, ctx) => ({
      job: { name: "jobs/42", spec: req.spec, owner: callerOf(ctx).uri, jobndx: 1, exitCode: -9 },
    }),
  }),
  serve(BufferService, {
    async publish(requests) {
      let accepted = 0n;
      let nextSeq = 0n;
      for await (const request of requests) {
        if (request.kind.case === "batch") {
          const image = request.kind.value.payload.case === "columns" ? request.kind.value.payload.value.fields["det/image"] : undefined;
          if (image?.dtype !== DataType.UINT16 || image.data.length !== 2 * 4 * 4) throw new Error("batch arrived damaged");
          accepted++;
          nextSeq = request.kind.value.seq + 1n;
        }
      }
      return { acceptedBatches: accepted, nextSeq };
    },
  }),
  serve(ProducerService, {
    async *produce(request) {
      const count = Number(request.maxEvents);
      for (let i = 0; i < count; i++) {
        yield { kind: { case: "batch", value: { seq: BigInt(i), eventIndices: [BigInt(i)] } } };
      }
      yield { kind: { case: "endOfStream", value: { batchCount: BigInt(count), eventCount: BigInt(count) } } };
    },
  }),
  serve(DataRequestService, {
    createDataRequest: (req) => ({ dataRequest: { ...req.dataRequest!, name: "dataRequests/7", state: 1 } }),
  }),
];

describe("grpc-js against connect-node, one call per service", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let pkg: grpc.GrpcObject;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, { services });
    const definition = protoLoader.loadSync(files, {
      includeDirs: [protoRoot],
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    pkg = grpc.loadPackageDefinition(definition);
  });
  afterAll(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });

  function client(path: string): grpc.Client {
    const Ctor = path.split(".").reduce((o: any, k) => o[k], pkg) as grpc.ServiceClientConstructor;
    const c = new Ctor(`127.0.0.1:${server.port}`, grpcJsCredentials(pki.alice), grpcJsChannelOptions);
    clients.push(c);
    return c;
  }

  it("ca: GetTrustBundle", async () => {
    const res = await unary<any>(client("lclstream.ca.v1.CertificateAuthorityService"), "GetTrustBundle", {});
    expect(res).toMatchObject({ trustDomain, caCertificatesPem: ["-----BEGIN CERTIFICATE-----"] });
  });

  it("jobs: SubmitJob with maps, nested messages and a negative int32", async () => {
    const spec = {
      name: "producer",
      script: "echo hi",
      environment: { A: "1", B: "two" },
      resources: { processCount: 3, exclusiveNodeUse: true },
      backend: "local",
    };
    const res = await unary<any>(client("lclstream.jobs.v1.JobQueueService"), "SubmitJob", { spec, requestId: "r1" });
    expect(res.job).toMatchObject({ name: "jobs/42", owner: `spiffe://${trustDomain}/user/alice`, jobndx: 1, exitCode: -9 });
    expect(res.job.spec).toMatchObject(spec);
  });

  it("buffer: Publish, a client stream of columnar batches", async () => {
    const c = client("lclstream.buffer.v1.BufferService") as any;
    let stream!: grpc.ClientWritableStream<unknown>;
    const response = new Promise<any>((resolve, reject) => {
      stream = c.Publish((error: Error | null, res: unknown) => (error ? reject(error) : resolve(res)));
    });
    stream.write({ open: { stream: "streams/s", producerRank: 0, publishToken: "t" } });
    for (let seq = 0; seq < 5; seq++) {
      stream.write({
        batch: {
          seq: String(seq),
          eventIndices: [String(seq)],
          columns: { fields: { "det/image": { dtype: "DATA_TYPE_UINT16", shape: ["1", "4", "4"], data: Buffer.alloc(32, seq) } } },
        },
      });
    }
    stream.write({ done: { batchCount: "5", eventCount: "5" } });
    stream.end();
    expect(await response).toMatchObject({ acceptedBatches: "5", nextSeq: "5" });
  });

  it("producer: Produce, a server stream ending with end of stream", async () => {
    const c = client("lclstream.producer.v1.ProducerService") as any;
    const messages = await collect<any>(c.Produce({ maxEvents: "3" }));
    expect(messages.map((m) => m.kind)).toEqual(["batch", "batch", "batch", "endOfStream"]);
    expect(messages[3].endOfStream).toMatchObject({ batchCount: "3", eventCount: "3" });
  });

  it("request: CreateDataRequest with a google.protobuf.Struct config", async () => {
    const producer = { fields: { event_source: { structValue: { fields: { type: { stringValue: "synthetic" } } } } } };
    const res = await unary<any>(client("lclstream.request.v1.DataRequestService"), "CreateDataRequest", {
      dataRequest: { experiment: "mfx101", producer, parallelism: 2 },
    });
    expect(res.dataRequest).toMatchObject({ name: "dataRequests/7", experiment: "mfx101", parallelism: 2, state: "STATE_PENDING" });
    expect(res.dataRequest.producer.fields.event_source.structValue.fields.type.stringValue).toBe("synthetic");
  });
});
