/** The request files under examples/ stay valid: each is a DataRequest whose producer config validates. */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { DataRequestSchema } from "../../gen/lclstream/request/v1/request_pb.js";
import { requestFromFile } from "../../services/cli/requests.js";
import { readProducerConfig } from "../../services/producer/config.js";

const dir = new URL("../../examples/", import.meta.url);

describe("examples", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  it("has the three LCLStream workflows", () => {
    expect(files.sort()).toEqual(["crystallography.yaml", "ml-training.yaml", "time-of-flight.yaml"]);
  });
  for (const file of files) {
    it(`${file} is a valid data request`, () => {
      const body = requestFromFile(readFileSync(new URL(file, dir), "utf8"));
      const request = fromJson(DataRequestSchema, body as JsonValue);
      expect(request.producer).toBeDefined();
      // In lclstreamer's layout: nothing translated, nothing ignored.
      expect(readProducerConfig(request.producer, file).notes).toEqual([]);
    });
  }
});
