/** HDF5 batches from the producer, read by h5py (the HDF5 C library), are the arrays the native serializer sends. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { JsonObject } from "@bufbuild/protobuf";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseProducerConfig } from "../../services/producer/config.js";
import { dtypeFromProto } from "../../services/producer/ndarray.js";
import { openSource, runPipeline } from "../../services/producer/pipeline.js";
import { internalConfig } from "../helpers/producer-config.js";
import { run } from "../helpers/tools.js";

const config = (serializer: JsonObject) =>
  parseProducerConfig(
    internalConfig(
      3,
      {
        det: { type: "SyntheticAreaDetector", geometry: "epix10k2M" },
        tof: { type: "SyntheticDigitizer", channels: 2, samples: 512 },
        energy: { type: "SyntheticScalar" },
      },
      { seed: 21, batchSize: 3, steps: [{ type: "PeakFinder", data_source: "det" }], serializer },
    ),
  );

async function firstBatch(serializer: JsonObject) {
  const c = config(serializer);
  const source = await openSource(c);
  for await (const b of runPipeline(c, source, { rank: 0, ranks: 1, signal: new AbortController().signal })) return b;
  throw new Error("no batch");
}

describe("HDF5 batches read by h5py", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-h5py-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("holds every field with the native batch's shape, dtype and values", async () => {
    const file = join(dir, "batch.h5");
    await writeFile(file, (await firstBatch({ type: "HDF5BinarySerializer", compression: "gzip" })).messages[0]!);
    const script = `
import h5py, json, hashlib, sys
out = {}
with h5py.File(sys.argv[1], "r") as f:
    for name, d in f["data"].items():
        out[name] = {"shape": list(d.shape), "dtype": str(d.dtype), "sha256": hashlib.sha256(d[()].tobytes()).hexdigest()}
print(json.dumps(out))`;
    const r = await run("python3", ["-c", script, file]);
    expect(r.stderr).toBe("");
    const fromH5py = JSON.parse(r.stdout);
    const native = await firstBatch({ type: "NativeBinarySerializer" });
    if (native.batch.payload.case !== "columns") throw new Error("expected columns");
    const { createHash } = await import("node:crypto");
    for (const [name, a] of Object.entries(native.batch.payload.value.fields)) {
      const dtype = dtypeFromProto[a.dtype];
      const numpyName = dtype === "bool" ? "uint8" : dtype;
      expect(fromH5py[name]).toEqual({ shape: a.shape.map(Number), dtype: numpyName, sha256: createHash("sha256").update(a.data).digest("hex") });
    }
    expect(Object.keys(fromH5py).sort()).toEqual(Object.keys(native.batch.payload.value.fields).sort());
  });
});
