/**
 * Bounds on requests (services/common/request-bounds.ts): undefined enum
 * values and overlong strings are refused before any handler runs, over
 * real mTLS, and the table of per-field bounds names real fields.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { create, createRegistry, fromJson, type JsonObject } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import {
  CreateDataRequestRequestSchema,
  DataRequestService,
  DataRequestSchema,
  file_lclstream_request_v1_request,
} from "../../gen/lclstream/request/v1/request_pb.js";
import { file_lclstream_jobs_v1_jobs } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { file_lclstream_ca_v1_ca } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { file_lclstream_buffer_v1_buffer } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { boundsViolations, defaultMaxStringChars, maxStringChars } from "../../services/common/request-bounds.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { clientFor, startServer } from "../helpers/servers.js";
import { failure } from "../helpers/errors.js";

describe("request bounds", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let handled = 0;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      services: [serve(DataRequestService, { createDataRequest: (req) => (handled++, { dataRequest: req.dataRequest }) })],
    });
  });
  afterAll(() => server.close());

  const producer = (json: JsonObject) => json;
  const createWith = (fields: object) =>
    clientFor(DataRequestService, server, pki.alice).createDataRequest({ dataRequest: { producer: producer({ batch_size: 4 }), ...fields } });

  it("passes a request within bounds to the handler", async () => {
    const before = handled;
    const { dataRequest } = await createWith({ experiment: "cxi12345", serializer: 2 });
    expect(dataRequest?.experiment).toBe("cxi12345");
    expect(handled).toBe(before + 1);
  });

  it("refuses an undefined enum value, naming the field and the values it takes", async () => {
    const before = handled;
    const refused = await failure(createWith({ serializer: 99 }));
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.fields).toEqual(["data_request.serializer"]);
    expect(refused.message).toContain("SERIALIZER_HDF5");
    const group = await failure(createWith({ consumerGroups: [{ name: "g", mode: 7 }] }));
    expect(group.fields).toEqual(["data_request.consumer_groups[0].mode"]);
    expect(handled).toBe(before);
  });

  it("refuses an overlong experiment, and an overlong string inside the producer config", async () => {
    const before = handled;
    const experiment = await failure(createWith({ experiment: "x".repeat(1024 * 1024) }));
    expect(experiment.code).toBe(Code.InvalidArgument);
    expect(experiment.fields).toEqual(["data_request.experiment"]);
    expect(experiment.message).toContain("at most 128");
    const inConfig = await failure(
      clientFor(DataRequestService, server, pki.alice).createDataRequest({
        dataRequest: { producer: producer({ source_identifier: "s".repeat(1024 * 1024) }) },
      }),
    );
    expect(inConfig.fields).toEqual(["data_request.producer.source_identifier"]);
    expect(handled).toBe(before);
  });

  it("reads a Struct message built by hand as the JSON it holds", () => {
    const r = create(CreateDataRequestRequestSchema, { dataRequest: { producer: { a: [{ b: "x".repeat(5000) }] } } });
    (r.dataRequest as unknown as { producer: unknown }).producer = fromJson(StructSchema, { a: [{ b: "x".repeat(5000) }] });
    expect(boundsViolations(CreateDataRequestRequestSchema, r).map((v) => v.field)).toEqual(["data_request.producer.a[0].b"]);
  });

  it("lists at most ten violations", () => {
    const r = create(DataRequestSchema, { readers: Array.from({ length: 50 }, () => "r".repeat(defaultMaxStringChars + 1)) });
    expect(boundsViolations(DataRequestSchema, r)).toHaveLength(10);
  });

  it("names only real string fields in its table of bounds", () => {
    const registry = createRegistry(file_lclstream_request_v1_request, file_lclstream_jobs_v1_jobs, file_lclstream_ca_v1_ca, file_lclstream_buffer_v1_buffer);
    for (const name of Object.keys(maxStringChars)) {
      const at = name.lastIndexOf(".");
      const field = registry.getMessage(name.slice(0, at))?.fields.find((f) => f.name === name.slice(at + 1));
      expect(field?.fieldKind === "scalar" && field.scalar, name).toBe(9); // ScalarType.STRING
    }
  });
});
