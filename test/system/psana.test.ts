/**
 * Real LCLS-II data through the whole mesh: an XTC2 run made with psana's own
 * xtcwriter, requested with lclstreamer's lclstreamer-psana2-mfx.yaml (only
 * its run and detector names changed to the test run's) by three producer
 * ranks, and every event's arrays compared with what psana itself reads from
 * the same files.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify } from "yaml";
import { createClient } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { issueOffline } from "../../services/ca/offline.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { readCertDir } from "../../services/common/pki.js";
import { parseProducerConfig } from "../../services/producer/config.js";
import { Psana2Source, psanaPython } from "../../services/producer/sources/psana.js";
import { lclstream, lclstreamBin } from "../helpers/cli.js";
import { consume } from "../helpers/buffer.js";
import { psanaFramesConfig } from "../helpers/producer-config.js";
import { run } from "../helpers/tools.js";

const fixtures = fileURLToPath(new URL("../fixtures/lclstreamer/", import.meta.url));
/** Writes XTC2 runs of distinct area-detector frames and digitizer-like detectors with psana's dgramCreate. */
const frameWriter = fileURLToPath(new URL("../helpers/xtc2_frames.py", import.meta.url));

/** psana's own reading of the run: each event's timestamp (as lclstreamer's float64) and a digest of its detector data as float64. */
const direct = `
import glob, hashlib, json, sys
import numpy as np
from psana import DataSource
ds = DataSource(files=sorted(glob.glob(sys.argv[1] + "/*.xtc2")), skip_calib_load="all")
run = next(ds.runs())
det = run.Detector("xppcspad")
out = {}
for evt in run.events():
    out[repr(float(np.float64(evt.timestamp)))] = hashlib.sha256(np.array(det.raw.raw(evt), dtype=np.float64).tobytes()).hexdigest()
print(json.dumps(out))
`;

/** What the consumer wrote: the same, from the HDF5 batches (datasets at lclstreamer-psana2-mfx.yaml's paths). */
const received = `
import glob, hashlib, json, sys
import h5py, hdf5plugin
out, rows = {}, 0
for path in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["data", "timestamp", "wavelength"], list(f.keys())
        for ts, data in zip(f["timestamp"][()], f["data"][()]):
            out[repr(float(ts))] = hashlib.sha256(data.tobytes()).hexdigest()
            rows += 1
print(json.dumps({"events": out, "rows": rows}))
`;

/** A run of `events` distinct 1 MiB jungfrau frames in `dir`, and each frame's SHA-256 as psana reads it. */
async function framesRun(dir: string, events: number, runNumber: number): Promise<{ file: string; expected: string[] }> {
  await mkdir(dir);
  const file = join(dir, `xpptut15-r${String(runNumber).padStart(4, "0")}-s000-c000.xtc2`);
  const shape = ["--shape", "1,512,1024", "--run", String(runNumber), "--seed", String(runNumber)];
  execFileSync(psanaPython(), [frameWriter, file, "--events", String(events), ...shape], { stdio: "ignore" });
  const script = `
import hashlib, json, sys
from psana import DataSource
run = next(DataSource(files=[sys.argv[1]], skip_calib_load="all").runs())
det = run.Detector("jungfrau")
print(json.dumps([hashlib.sha256(det.raw.raw(e).tobytes()).hexdigest() for e in run.events()]))
`;
  return { file, expected: JSON.parse((await run(psanaPython(), ["-c", script, file], 60_000)).stdout) as string[] };
}

describe("an XTC2 run through the whole mesh, read by psana", () => {
  let stateDir: string;
  let mesh: LocalMesh;
  let xtc: string;
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-psana-"));
    // psana's own test data: two streams of one run, named as the DAQ names them.
    xtc = join(stateDir, "xtc");
    await mkdir(xtc);
    const python = psanaPython();
    const xtcwriter = join(dirname(dirname(python)), "lib", "python3.11", "site-packages", "bin", "xtcwriter");
    for (const stream of ["s000", "s001"])
      execFileSync(xtcwriter, ["-f", join(xtc, `xpptut15-r0014-${stream}-c000.xtc2`), "-n", "30", "-t"], { stdio: "ignore" });
    mesh = await startLocalMesh({ stateDir, logLevel: "error" });
  });
  afterAll(async () => {
    await mesh?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("delivers lclstreamer-psana2-mfx.yaml's fields, every event once across three ranks, equal to psana's own reading", { timeout: 120_000 }, async () => {
    const mfx = readFileSync(join(fixtures, "lclstreamer-psana2-mfx.yaml"), "utf8")
      .replace("exp=mfx100852324,run=355", `exp=xpptut15,run=14,dir=${xtc}`)
      .replace("psana_name: jungfrau", "psana_name: xppcspad")
      .replace('psana_name: "SIOC:SYS0:ML00:AO192"', 'psana_name: "HX2:DVD:GCC:01:PMON"');
    const request = join(stateDir, "mfx.yaml");
    await writeFile(request, stringify({ parallelism: 3, producer: parseYaml(mfx) }));
    const out = join(stateDir, "out");
    const got = await lclstream(["get", request, "--state-dir", stateDir, "--out", out, "--format", "hdf5"], { timeoutMs: 100_000 });
    expect(got.stderr).not.toMatch(/error|failed/i);
    expect(got.code).toBe(0);
    // 30 events, three ranks of 10, batches of 10.
    expect((await readdir(out)).filter((f) => f.endsWith(".h5")).length).toBe(3);

    const fromPsana = await run(psanaPython(), ["-c", direct, xtc], 60_000);
    expect(fromPsana.stderr).not.toMatch(/Error/);
    const expected = JSON.parse(fromPsana.stdout) as Record<string, string>;
    const fromConsumer = await run("python3", ["-c", received, out]);
    expect(fromConsumer.stderr).toBe("");
    const { events, rows } = JSON.parse(fromConsumer.stdout) as { events: Record<string, string>; rows: number };
    expect(Object.keys(expected).length).toBe(30);
    expect(rows).toBe(30);
    expect(events).toEqual(expected);
  });

  it("reuses a rank's frame memory without changing a byte: 120 MiB of frames, each as psana reads it", { timeout: 120_000 }, async () => {
    // More than the 64 MiB a rank keeps until the buffer confirms it, so frames are given back and read into again mid-run.
    const { file, expected } = await framesRun(join(stateDir, "reuse"), 120, 16);
    expect(expected).toHaveLength(120);
    expect(new Set(expected).size).toBe(120);

    const tls = await readCertDir(mesh.endpoints.certDir);
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
    // A batch of one, natively serialized, sends the frame's own memory: what is reused is what is sent.
    const producer = psanaFramesConfig(file);
    const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer, consumerGroups: [{ name: "check" }] } as never });
    let stream = dataRequest!.stream;
    for (let i = 0; !stream && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stream = (await requests.getDataRequest({ name: dataRequest!.name })).dataRequest!.stream;
    }
    const got: string[] = [];
    const consumed = await consume(createClient(BufferService, createMeshTransport({ baseUrl: mesh.endpoints.buffer, tls })), stream, "check", {
      onBatch: (r) => {
        const batch = r.kind.value as { eventIndices: bigint[]; payload: { value: { fields: Record<string, { data: Uint8Array }> } } };
        got[Number(batch.eventIndices[0])] = createHash("sha256").update(batch.payload.value.fields.frames!.data).digest("hex");
      },
    });
    expect(consumed.end?.eventCount).toBe(120n);
    expect(got).toEqual(expected);
  });

  it("hands a rank's frames over in memory shared with psana, or on the pipe, each as psana reads it while it is held", { timeout: 120_000 }, async () => {
    // 200 MiB of frames, 100 MiB of them held at a time: more than the 128 MiB shared, so its memory is reused
    // from wherever it was given back, and the events that do not fit in what is free come on the pipe.
    const { file, expected } = await framesRun(join(stateDir, "shared"), 200, 17);
    expect(new Set(expected).size).toBe(200);
    const config = parseProducerConfig(psanaFramesConfig(file));
    const sha = (data: ArrayBufferView) =>
      createHash("sha256")
        .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
        .digest("hex");

    /** Every event's digest, taken when it is given back after 100 later events came; and how many were views of the shared memory. */
    const readHolding = async () => {
      const source = await Psana2Source.open(config, { rank: 0, ranks: 1, start: 0 });
      const held: { index: number; data: ArrayBufferView; release?: () => void }[] = [];
      const got: string[] = [];
      let shared = 0;
      const giveBack = () => {
        const e = held.shift()!;
        got[e.index] = sha(e.data);
        e.release!();
      };
      for await (const event of source.events(0, 1, 0, new AbortController().signal)) {
        const data = event.fields.frames!.data;
        if (data.buffer.byteLength > data.byteLength) shared++; // a view of the shared memory, not a frame's own
        held.push({ index: event.index, data, release: event.release });
        if (held.length > 100) giveBack();
      }
      while (held.length) giveBack();
      source.close();
      return { got, shared };
    };

    const before = process.env.LCLSTREAM_NATIVE;
    if (before !== "0") {
      const inShared = await readHolding();
      expect(inShared.got).toEqual(expected);
      expect(inShared.shared).toBeGreaterThan(100);
      expect(inShared.shared).toBeLessThan(200);
    }
    process.env.LCLSTREAM_NATIVE = "0";
    try {
      const onPipe = await readHolding();
      expect(onPipe.got).toEqual(expected);
      expect(onPipe.shared).toBe(0);
    } finally {
      if (before === undefined) delete process.env.LCLSTREAM_NATIVE;
      else process.env.LCLSTREAM_NATIVE = before;
    }
  });

  it("fails the request with psana's own words in one line when the config names a detector the run lacks", { timeout: 60_000 }, async () => {
    const config = parseYaml(readFileSync(join(fixtures, "lclstreamer-psana2-mfx.yaml"), "utf8"));
    config.source_identifier = `exp=xpptut15,run=14,dir=${xtc}`;
    config.data_sources.detector_data.psana_name = "nope";
    const request = join(stateDir, "bad.yaml");
    await writeFile(request, stringify({ producer: config }));
    const got = await lclstream(["get", request, "--state-dir", stateDir], { timeoutMs: 50_000 });
    expect(got.code).not.toBe(0);
    expect(got.stderr).toMatch(/failed: producer rank 0 failed: .*data_sources\.detector_data: no detector 'nope' in this run .*the run has .*xppcspad/);
  });

  it("starts one psana reader for a rank, and ends it when the rank is killed", { timeout: 60_000 }, async () => {
    // A rank stuck sending to a ZeroMQ peer that never comes, its reader blocked behind it: 200 MiB of frames, more than it
    // reads ahead and the 128 MiB it shares with its reader.
    const dir = join(stateDir, "big");
    await mkdir(dir);
    execFileSync(psanaPython(), [frameWriter, join(dir, "xpptut15-r0015-s000-c000.xtc2"), "--events", "200", "--shape", "1,512,1024", "--run", "15"], {
      stdio: "ignore",
    });
    const config = {
      source_identifier: `exp=xpptut15,run=15,dir=${dir}`,
      skip_incomplete_events: false,
      event_source: { type: "Psana2EventSource" },
      data_sources: { frames: { type: "Psana2DetectorInterface", psana_name: "jungfrau", psana_fields: "raw.raw", dtype: "uint16" } },
      processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 1 },
      data_serializer: { type: "NativeBinarySerializer" },
      data_handlers: [{ type: "BinaryDataStreamingDataHandler", urls: ["tcp://127.0.0.1:9"], role: "client" }],
    };
    const file = join(stateDir, "stuck.yaml");
    await writeFile(file, stringify(config));
    const producer = spawn(process.execPath, [lclstreamBin, "produce", "--config", file], { stdio: "ignore" });
    try {
      let reader: number | undefined;
      for (let i = 0; i < 100 && !reader; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const children = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(producer.pid)], { encoding: "utf8" }).stdout;
        reader = Number(/^\s*(\d+) .*psana_reader\.py/m.exec(children)?.[1]) || undefined;
      }
      expect(reader).toBeDefined();
      // The reader that found the run's fields is the one that reads the rank's events (psana starts once).
      await new Promise((r) => setTimeout(r, 1500));
      const readers = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(producer.pid)], { encoding: "utf8" }).stdout.match(/^\s*\d+ .*psana_reader\.py/gm);
      expect(readers?.map((line) => Number(line.trim().split(" ")[0]))).toEqual([reader]);
      producer.kill("SIGKILL");
      let alive = true;
      for (let i = 0; i < 50 && alive; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          process.kill(reader!, 0);
        } catch {
          alive = false;
        }
      }
      expect(alive).toBe(false);
    } finally {
      producer.kill("SIGKILL"); // also when an expectation failed: nothing left running
    }
  });

  it("runs lclstreamer-psana2-tmo.yaml under lclstream produce, unchanged but for where the run is, with every frame as psana reads it", {
    timeout: 120_000,
  }, async () => {
    // Distinct frames with peaks, and the run's detectors under the names the config uses.
    const dir = join(stateDir, "tmo");
    await mkdir(dir);
    const detectors = ["gmd", "xgmd", "mrco_hsd"].flatMap((name) => ["--scalar-detector", name]);
    const make = ["--events", "25", "--shape", "1,64,96", "--detector", "tmo_fzppiranha", ...detectors, "--expt", "tmox1016823", "--run", "44", "--seed", "3"];
    execFileSync(psanaPython(), [frameWriter, join(dir, "tmox1016823-r0044-s000-c000.xtc2"), ...make], { stdio: "ignore" });
    const tmo = readFileSync(join(fixtures, "lclstreamer-psana2-tmo.yaml"), "utf8").replace("exp=tmox1016823,run=44", `exp=tmox1016823,run=44,dir=${dir}`);
    await writeFile(join(dir, "tmo.yaml"), tmo);
    // Its file handler writes to workspace/output, relative to where it runs.
    const produced = await lclstream(["produce", "--config", join(dir, "tmo.yaml")], { timeoutMs: 100_000, cwd: dir });
    expect(produced.code, produced.stderr).toBe(0);
    const perEvent = `
import glob, hashlib, json, sys
import numpy as np
if sys.argv[1] == "psana":
    from psana import DataSource
    run = next(DataSource(files=sorted(glob.glob(sys.argv[2] + "/*.xtc2")), skip_calib_load="all").runs())
    cam, gmd = run.Detector("tmo_fzppiranha"), run.Detector("gmd")
    rows = [(float(np.float64(e.timestamp)), np.array(cam.raw.raw(e), dtype=np.float64), np.float64(gmd.raw.milliJoulesPerPulse(e))) for e in run.events()]
else:
    import h5py, hdf5plugin
    rows = []
    for path in sorted(glob.glob(sys.argv[2] + "/workspace/output/r0_*.h5")):
        with h5py.File(path, "r") as f:
            assert sorted(f.keys()) == ["fzpppiranha", "peaks", "pulseenergy", "timestamp", "waveform", "xpulseenergy"], list(f.keys())
            rows += zip(f["timestamp"][()], f["fzpppiranha"][()], f["pulseenergy"][()])
print(json.dumps({repr(float(t)): [hashlib.sha256(frame.tobytes()).hexdigest(), float(e)] for t, frame, e in rows}))
`;
    const fromPsana = await run(psanaPython(), ["-c", perEvent, "psana", dir], 60_000);
    const fromFiles = await run("python3", ["-c", perEvent, "files", dir], 60_000);
    expect(fromFiles.stderr).toBe("");
    const expected = JSON.parse(fromPsana.stdout);
    expect(Object.keys(expected)).toHaveLength(25);
    expect(new Set(Object.values(expected).map((v) => (v as string[])[0])).size).toBe(25);
    expect(JSON.parse(fromFiles.stdout)).toEqual(expected);
  });

  it("writes lclstreamer's SIMPLON messages: start, one image per batch (bitshuffle-LZ4), stop, as cbor2 and bitshuffle read them", {
    timeout: 120_000,
  }, async () => {
    const dir = join(stateDir, "simplon");
    await mkdir(dir);
    execFileSync(
      psanaPython(),
      [
        frameWriter,
        join(dir, "mfxl1027522-r0051-s000-c000.xtc2"),
        "--events",
        "6",
        "--shape",
        "2,32,48",
        "--expt",
        "mfxl1027522",
        "--run",
        "51",
        "--seed",
        "5",
      ],
      {
        stdio: "ignore",
      },
    );
    // lclstreamer-psana2-simplon.yml's layout, on the detectors this run has.
    const config = parseYaml(readFileSync(join(fixtures, "lclstreamer-psana2-simplon.yml"), "utf8"));
    config.source_identifier = `exp=mfxl1027522,run=51,dir=${dir}`;
    config.data_sources.detector_data.psana_fields = "raw.raw";
    config.data_sources.detector_geometry.psana_fields = ["raw._uniqueid", "raw._det_name"];
    config.data_sources.beam_data = {
      type: "Psana2DetectorInterface",
      psana_name: "gmd",
      psana_fields: ["raw.photonEnergy", "raw.milliJoulesPerPulse", "raw.photonEnergy", "raw.milliJoulesPerPulse", "raw.photonEnergy"],
    };
    delete config.data_sources.photon_wavelength;
    config.data_handlers = [{ type: "BinaryFileWritingDataHandler", write_directory: join(dir, "out"), file_suffix: "cbor" }];
    await writeFile(join(dir, "simplon.yaml"), stringify(config));
    const produced = await lclstream(["produce", "--config", join(dir, "simplon.yaml")], { timeoutMs: 100_000 });
    expect(produced.code, produced.stderr).toBe(0);
    const check = `
import glob, json, sys
import bitshuffle, cbor2
import numpy as np
from psana import DataSource
run = next(DataSource(files=sorted(glob.glob(sys.argv[1] + "/*.xtc2")), skip_calib_load="all").runs())
det = run.Detector("jungfrau")
frames = [np.array(det.raw.raw(e), dtype=np.float64) for e in run.events()]
print(json.dumps([len(frames)]))
messages = []
for i in range(len(glob.glob(sys.argv[1] + "/out/r0_*.cbor"))):
    with open(f"{sys.argv[1]}/out/r0_{i}.cbor", "rb") as f:
        raw = f.read()
    m = cbor2.loads(raw[1:])
    if m["type"] == "image":
        shape = frames[0].shape
        image = bitshuffle.decompress_lz4(np.frombuffer(m["compressed_data"], dtype=np.uint8), shape, np.dtype(m["dtype"]), 4096)
        m["equal"] = bool(np.array_equal(image, frames[len([x for x in messages if x["type"] == "image"])]))
        m["sum_ok"] = bool(abs(m["sum"] - image.sum()) < 1e-6 * abs(image.sum()))
        del m["compressed_data"]
    messages.append({"prefix": chr(raw[0]), **m})
print(json.dumps(messages))
`;
    const r = await run(psanaPython(), ["-c", check, dir], 60_000);
    const [counts, messages] = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(counts).toEqual([6]);
    expect(messages.map((m: { prefix: string; type: string }) => `${m.prefix}:${m.type}`)).toEqual(["c:start", ...Array(6).fill("m:image"), "c:stop"]);
    expect(messages[0]).toMatchObject({
      run_number: "51",
      experiment: "mfxl1027522",
      beamline: "MFX",
      algorithm: "bitshuffle-lz4",
      datatype: "float64",
      shape: "2x32x48",
      polarization: { fraction: 0, axis: [1, 0, 0] },
      data_collection_rate: "120Hz",
      detector: { name: "jungfrau", type: "AreaDetector", geometry: "jungfrau" },
    });
    for (const m of messages.slice(1, 7))
      expect(m).toMatchObject({ equal: true, sum_ok: true, run: "51", dtype: "float64", beam_direction: { angle_x: expect.any(Number) } });
  });

  it("lists the XTC2 runs under its data directory in ListSources, with their detectors as psana names them", async () => {
    const producer = createClient(ProducerService, createMeshTransport({ baseUrl: mesh.endpoints.producer, tls: await readCertDir(mesh.endpoints.certDir) }));
    const { sources } = await producer.listSources({});
    const run = sources.find((s) => s.name === "psana2/xpptut15/r0014");
    expect(run).toMatchObject({ type: "Psana2EventSource", runs: [{ name: `exp=xpptut15,run=14,dir=${xtc}` }] });
    expect(run!.description).toBe(`run 14 of xpptut15: 2 XTC2 files in ${xtc}`);
    expect(run!.fields.map((f) => f.name)).toEqual(expect.arrayContaining(["xppcspad", "xpphsd", "epics"]));
    expect(run!.fields.find((f) => f.name === "xppcspad")!.description).toBe("cspad raw 2_3_42");
    // Someone the policy does not let ask for xpptut15 does not learn of its runs.
    const stranger = createClient(
      ProducerService,
      createMeshTransport({ baseUrl: mesh.endpoints.producer, tls: await issueOffline(stateDir, { identity: "user/mallory" }) }),
    );
    const theirs = (await stranger.listSources({})).sources;
    expect(theirs.length).toBeGreaterThan(0);
    expect(theirs.filter((s) => s.type === "Psana2EventSource")).toEqual([]);
  });
});
