/**
 * `lclstream sample-data cxi [DIR]`: CXI files of synthetic crystallography
 * frames to try HDF5EventSource and the ML-training example on, in the layout
 * Cheetah and psocake write: frames at /entry_1/data_1/data (events x H x W,
 * float32, a chunk per frame) and the injected Bragg peaks as their labels at
 * /entry_1/result_1 (nPeaks, peakYPosRaw, peakXPosRaw, peakTotalIntensity,
 * zero past each frame's count).
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { geometries, readProducerConfig } from "../producer/config.js";
import { h5 } from "../producer/hdf5.js";
import { InternalSource } from "../producer/sources/internal.js";
import { defaultStateDir } from "./options.js";

const maxPeaks = 64;

/** Writes `files` CXI files of `events` frames each into `dir`; returns their paths. */
export async function writeSampleCxi(dir: string, options: { files: number; events: number; geometry: keyof typeof geometries; run: number; seed: number }) {
  const { config } = readProducerConfig({
    source_identifier: `synthetic:cxi:run=${options.run}`,
    skip_incomplete_events: false,
    event_source: { type: "InternalEventSource", number_of_events_to_generate: options.files * options.events, seed: options.seed },
    data_sources: { frame: { type: "SyntheticAreaDetector", geometry: options.geometry, peaks: { min: 0, max: maxPeaks }, truth: true } },
    processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 1 },
    data_serializer: { type: "NativeBinarySerializer" },
    data_handlers: [],
  });
  const source = new InternalSource(config);
  const shape = geometries[options.geometry].shape as readonly number[];
  const w = shape.at(-1)!;
  const h = shape.reduce((n, d) => n * d, 1) / w;
  const lib = await h5();
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  const events = source.events(0, 1, 0, new AbortController().signal)[Symbol.asyncIterator]();
  for (let f = 0; f < options.files; f++) {
    const path = join(dir, `r${String(options.run).padStart(4, "0")}-${f}.cxi`);
    const file = new lib.File(path, "w");
    try {
      for (const group of ["entry_1", "entry_1/data_1", "entry_1/result_1"]) file.create_group(group);
      const frames = new Float32Array(h * w);
      const data = file.create_dataset({
        name: "entry_1/data_1/data",
        data: frames,
        shape: [1, h, w],
        maxshape: [null, h, w],
        dtype: "<f",
        chunks: [1, h, w],
      });
      const counts = new Int32Array(options.events);
      const ys = new Float32Array(options.events * maxPeaks);
      const xs = new Float32Array(options.events * maxPeaks);
      const intensities = new Float32Array(options.events * maxPeaks);
      for (let e = 0; e < options.events; e++) {
        const { value: event } = await events.next();
        const frame = event!.fields.frame!;
        // Any detector geometry as one 2-D frame of float32 (panels stacked), as a CXI file holds it.
        frames.set(frame.data as ArrayLike<number>);
        if (e > 0) data.resize([e + 1, h, w]);
        data.write_slice([[e, e + 1]], frames);
        const truth = event!.fields.frame_peaks_truth!.data as Float32Array;
        for (let k = 0; k < maxPeaks && !Number.isNaN(truth[k * 3]!); k++) {
          ys[e * maxPeaks + k] = truth[k * 3]!;
          xs[e * maxPeaks + k] = truth[k * 3 + 1]!;
          intensities[e * maxPeaks + k] = truth[k * 3 + 2]!;
          counts[e]!++;
        }
      }
      file.create_dataset({ name: "entry_1/result_1/nPeaks", data: counts, shape: [options.events], dtype: "<i" });
      for (const [name, values] of [
        ["peakYPosRaw", ys],
        ["peakXPosRaw", xs],
        ["peakTotalIntensity", intensities],
      ] as const)
        file.create_dataset({ name: `entry_1/result_1/${name}`, data: values, shape: [options.events, maxPeaks], dtype: "<f" });
    } finally {
      file.close();
    }
    paths.push(path);
  }
  source.close();
  return paths;
}

export function registerSampleDataCommands(program: Command): void {
  const sample = program.command("sample-data").description("write sample data to try lclstream on");
  sample
    .command("cxi")
    .description("CXI files of synthetic crystallography frames with their Bragg peaks (for HDF5EventSource and examples/ml-training.yaml)")
    .argument("[dir]", "where to write them (default: run42 in the `lclstream up` state directory, one of its data directories)")
    .option("--files <n>", "files to write", "2")
    .option("--events <n>", "frames per file", "8")
    .option("--geometry <name>", `detector geometry: ${Object.keys(geometries).join(", ")}`, "jungfrau1M")
    .option("--run <n>", "run number in the file names (r0042-0.cxi)", "42")
    .option("--seed <n>", "seed of the frames", "7")
    .action(async (dir: string | undefined, o) => {
      const count = (name: string, value: string) => {
        if (!/^[1-9][0-9]*$/.test(value)) throw new Error(`--${name} ${value} is not a positive whole number`);
        return Number(value);
      };
      if (!(o.geometry in geometries)) throw new Error(`--geometry ${o.geometry} is not one of ${Object.keys(geometries).join(", ")}`);
      const out = resolve(dir ?? join(defaultStateDir(), `run${o.run}`));
      const paths = await writeSampleCxi(out, {
        files: count("files", o.files),
        events: count("events", o.events),
        geometry: o.geometry,
        run: count("run", o.run),
        seed: count("seed", o.seed),
      });
      for (const path of paths) console.log(path);
    });
}
