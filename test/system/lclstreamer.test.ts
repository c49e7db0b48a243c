/**
 * lclstreamer's own formats with its own readers: the HDF5 batches of every
 * compression setting opened by h5py with hdf5plugin and by h5dump, and
 * compared with what lclstreamer's serializer writes for the same arrays; the
 * ZeroMQ handler read by a pyzmq PULL socket as lclstreamer's pull scripts
 * read it; lclstreamer-internal.yaml, unchanged, as a data request.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { readCertDir } from "../../services/common/pki.js";
import { hdf5Compressions, parseProducerConfig } from "../../services/producer/config.js";
import { openSource, runPipeline } from "../../services/producer/pipeline.js";
import { lclstream } from "../helpers/cli.js";
import { internalConfig } from "../helpers/producer-config.js";
import { run } from "../helpers/tools.js";

const fixtures = fileURLToPath(new URL("../fixtures/lclstreamer/", import.meta.url));
const internalYaml = readFileSync(join(fixtures, "lclstreamer-internal.yaml"), "utf8");

const fields = { random: "/data/random", int: "/data/int", float: "/data/float", frame: "/detector/frame", double: "/detector/double" };
const dataSources = {
  random: { type: "GenericRandomNumpyArray", array_shape: "20,2", array_dtype: "float32" },
  int: { type: "IntValue", value: 3 },
  float: { type: "FloatValue", value: 4.5 },
  frame: { type: "GenericRandomNumpyArray", array_shape: "16,16", array_dtype: "uint16" },
  double: { type: "GenericRandomNumpyArray", array_shape: "4,4", array_dtype: "float64" },
  unlisted: { type: "FloatValue", value: 1 },
};

/** Describes our file and lclstreamer's file for the same arrays: datasets, shapes, dtypes, chunks, filters, value digests. */
const compare = `
import hashlib, json, sys
import h5py, hdf5plugin
sys.path.insert(0, sys.argv[2])
from hdf5_serializer import serialize

def describe(f):
    out = {}
    def visit(name, d):
        if isinstance(d, h5py.Dataset):
            out["/" + name] = {"shape": list(d.shape), "dtype": str(d.dtype), "chunks": list(d.chunks), "filters": {k: list(v) if isinstance(v, tuple) else v for k, v in d._filters.items()}, "sha256": hashlib.sha256(d[()].tobytes()).hexdigest(), "attrs": list(d.attrs)}
    f.visititems(visit)
    return out

settings = json.loads(sys.argv[3])
with h5py.File(sys.argv[1], "r") as f:
    ours = describe(f)
    arrays = {name: f[path][()] for name, path in settings["fields"].items() if path in f}
theirs_bytes, refused = serialize(arrays, settings["fields"], settings["compression"], settings["level"])
with open(sys.argv[1] + ".lclstreamer.h5", "wb") as out:
    out.write(theirs_bytes)
with h5py.File(sys.argv[1] + ".lclstreamer.h5", "r") as f:
    theirs = describe(f)
print(json.dumps({"ours": ours, "theirs": theirs, "refused": refused, "plugins": hdf5plugin.PLUGINS_PATH}))
`;

describe("lclstreamer's HDF5BinarySerializer, as h5py, hdf5plugin and h5dump read it", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-lclstreamer-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  for (const compression of [null, ...hdf5Compressions]) {
    it(`compression ${compression}: the same datasets, chunks, filters and values as lclstreamer's`, async () => {
      const level = compression === "bitshuffle_with_zstd" ? 5 : 3;
      const config = parseProducerConfig(
        internalConfig(5, dataSources, { batchSize: 5, serializer: { type: "HDF5BinarySerializer", compression, compression_level: level, fields } }),
      );
      const source = await openSource(config);
      const file = join(dir, `batch-${compression}.h5`);
      for await (const b of runPipeline(config, source, { rank: 0, ranks: 1, signal: new AbortController().signal })) await writeFile(file, b.messages[0]!);
      source.close();

      const r = await run("python3", ["-c", compare, file, fixtures, JSON.stringify({ fields, compression, level })]);
      expect(r.stderr).toBe("");
      const { ours, theirs, refused, plugins } = JSON.parse(r.stdout);
      // Only the listed fields, at their paths; one chunk per event; no attributes.
      expect(Object.keys(ours).sort()).toEqual(Object.values(fields).sort());
      expect(ours["/data/random"]).toMatchObject({ shape: [5, 20, 2], dtype: "float32", chunks: [1, 20, 2], attrs: [] });
      expect(ours["/data/int"]).toMatchObject({ shape: [5], dtype: "int64", chunks: [1] });
      expect(ours["/data/float"]).toMatchObject({ shape: [5], dtype: "float64", chunks: [1] });
      for (const path of Object.values(fields)) {
        if (compression === "zfp" && path === "/detector/frame") {
          // ZFP takes 32- and 64-bit numbers only: lclstreamer's call fails on uint16; here the dataset goes unfiltered.
          expect(refused.frame).toMatch(/invalid datatype size/);
          expect(ours[path].filters).toEqual({});
          continue;
        }
        const expected = structuredClone(theirs[path]);
        // h5wasm-plugins' ZFP cannot encode doubles here (see zfpApplies): float64 goes uncompressed.
        if (compression === "zfp" && path === "/detector/double") delete expected.filters["32013"];
        // Where ZFP cannot apply (one value per chunk) h5py keeps it in the pipeline, unused; here it is left out.
        if (compression === "zfp" && expected.filters["32013"] === null) delete expected.filters["32013"];
        // h5wasm sets one filter per dataset: gzip_with_shuffle is written without the shuffle filter (same values).
        if (compression === "gzip_with_shuffle") delete expected.filters.shuffle;
        expect(ours[path], path).toEqual(expected);
      }
      if (compression) expect(Object.keys(ours["/data/random"].filters)).not.toEqual([]);

      // h5dump, the HDF5 tools' own reader, with the same plugins.
      const dump = await run("h5dump", ["-p", "-d", "/data/int", "-d", "/data/random", file], 30_000, { ...process.env, HDF5_PLUGIN_PATH: plugins });
      expect(dump.stderr).toBe("");
      expect(dump.stdout).toMatch(/DATASET "\/data\/int"[\s\S]*CHUNKED \( 1 \)[\s\S]*\(0\): 3, 3, 3, 3, 3/);
      const filterName = { gzip: "DEFLATE", gzip_with_shuffle: "DEFLATE", bitshuffle_with_lz4: "32008", bitshuffle_with_zstd: "32008", zfp: "32013" } as const;
      if (compression) expect(dump.stdout).toContain(filterName[compression]);
      else expect(dump.stdout).toMatch(/FILTERS \{\s*NONE\s*\}/);
    });
  }
});

/** Receives from a ZeroMQ PUSH as lclstreamer's pull_script_hdf5_zmq.py does (PULL, bind), counting events; prints the port first. */
const pull = `
import json, sys
from io import BytesIO
import h5py, hdf5plugin, zmq
socket = zmq.Context().socket(zmq.PULL)
port = socket.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
socket.RCVTIMEO = 30000
events, messages, fields = 0, 0, set()
while events < int(sys.argv[1]):
    with h5py.File(BytesIO(socket.recv()), "r") as f:
        events += f["data/random"].shape[0]
        messages += 1
        fields |= {"/data/" + k for k in f["data"].keys()}
        assert f["data/random"].shape[1:] == (20, 2) and (f["data/int"][()] == 3).all()
print(json.dumps({"events": events, "messages": messages, "fields": sorted(fields)}), flush=True)
`;

describe("lclstreamer's BinaryDataStreamingDataHandler under lclstream produce", () => {
  it("streams lclstreamer-internal.yaml's 76 events as HDF5 messages to a pyzmq PULL receiver", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-zmq-"));
    const { spawn } = await import("node:child_process");
    const receiver = spawn("python3", ["-c", pull, "76"], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => receiver.once("exit", resolve));
    try {
      let out = "";
      let err = "";
      receiver.stderr.on("data", (c) => (err += c));
      const port = await new Promise<string>((resolve, reject) => {
        receiver.stdout.on("data", (c) => {
          out += c;
          if (out.includes("\n")) resolve(out.split("\n")[0]!);
        });
        void exited.then(() => reject(new Error(`the receiver exited: ${err}`)));
      });
      // The config as lclstreamer ships it, but for the port: a test binds an ephemeral one.
      const config = join(dir, "lclstreamer-internal.yaml");
      await writeFile(config, internalYaml.replace("tcp://127.0.0.1:12321", `tcp://127.0.0.1:${port}`));
      const produced = await lclstream(["produce", "--config", config]);
      expect(produced.stderr).not.toMatch(/error/i);
      expect(produced.code).toBe(0);
      const code = await exited;
      expect(err).toBe("");
      expect(code).toBe(0);
      expect(JSON.parse(out.split("\n")[1]!)).toEqual({ events: 76, messages: 8, fields: ["/data/float", "/data/int", "/data/random"] });
    } finally {
      receiver.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("lclstreamer-internal.yaml as a data request, unchanged", () => {
  let stateDir: string;
  let mesh: LocalMesh;
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-lclstreamer-mesh-"));
    mesh = await startLocalMesh({ stateDir, logLevel: "error" });
  });
  afterAll(async () => {
    await mesh?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("says the buffer replaced its ZeroMQ handler, and delivers its 76 events in HDF5 batches that h5py reads", async () => {
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls: await readCertDir(mesh.endpoints.certDir) }));
    const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer: parseYaml(internalYaml) }, validateOnly: true });
    expect(dataRequest!.configNotes).toEqual([
      "data_handlers.0: BinaryDataStreamingDataHandler (tcp://127.0.0.1:12321) replaced by the request's buffer stream",
    ]);

    const out = join(stateDir, "out");
    const got = await lclstream(["get", join(fixtures, "lclstreamer-internal.yaml"), "--state-dir", stateDir, "--out", out, "--format", "hdf5"]);
    expect(got.stderr).not.toMatch(/error/i);
    expect(got.code).toBe(0);
    const files = (await readdir(out)).filter((f) => f.endsWith(".h5"));
    expect(files).toHaveLength(8);
    const script = `
import h5py, sys, glob
events = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    with h5py.File(path, "r") as f:
        assert sorted(f["data"].keys()) == ["float", "int", "random"], list(f["data"].keys())
        events += f["data/random"].shape[0]
print(events)`;
    const r = await run("python3", ["-c", script, out]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("76");
  });
});
