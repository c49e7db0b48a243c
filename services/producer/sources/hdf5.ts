/**
 * Events along axis 0 of datasets in one or many HDF5/CXI files (the
 * ML-training workflow): fields mapped to dataset paths, the files' events
 * concatenated, optionally shuffled with a seed, resumable from a linear
 * index of that order.
 */
import { existsSync } from "node:fs";
import type { Dataset, File as H5File } from "h5wasm";
import type { DataSourceConfig, ProducerConfig } from "../config.js";
import { ConfigError } from "../config.js";
import { positionsOf, type DetectorEvent, type EventSource, type FieldInfo } from "../event.js";
import { dtypeOfMetadata, h5, readRows } from "../hdf5.js";
import { typedView, type Dtype, type NdArray } from "../ndarray.js";
import { Prng } from "../prng.js";

type Hdf5Config = Extract<ProducerConfig["event_source"], { type: "HDF5EventSource" }>;
type Hdf5Dataset = Extract<DataSourceConfig, { type: "HDF5Dataset" }>;

interface OpenFile {
  path: string;
  file: H5File;
  datasets: Map<string, Dataset>;
  events: number;
}

export class Hdf5Source implements EventSource {
  readonly eventCount: number;
  readonly #files: OpenFile[];
  readonly #fields: FieldInfo[];
  /** Global index of each file's first event. */
  readonly #offsets: number[];
  readonly #order: Uint32Array | undefined;

  private constructor(files: OpenFile[], fields: FieldInfo[], config: Hdf5Config) {
    this.#files = files;
    this.#fields = fields;
    this.#offsets = [];
    let total = 0;
    for (const f of files) {
      this.#offsets.push(total);
      total += f.events;
    }
    this.eventCount = total;
    if (config.shuffle) {
      const order = new Uint32Array(total).map((_, i) => i);
      const rng = new Prng(config.seed, 0xf11e);
      for (let i = total - 1; i > 0; i--) {
        const j = Math.floor(rng.uniform() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      this.#order = order;
    }
  }

  /** Opens every file and checks that each names every dataset with the same per-event shape and type. */
  static async open(config: ProducerConfig): Promise<Hdf5Source> {
    const source = config.event_source as Hdf5Config;
    const wanted = Object.entries(config.data_sources).filter((e): e is [string, Hdf5Dataset] => e[1].type === "HDF5Dataset");
    const lib = await h5();
    const problems: { path: string; message: string }[] = [];
    const files: OpenFile[] = [];
    let fields: FieldInfo[] | undefined;
    for (const [i, path] of source.files.entries()) {
      if (!existsSync(path)) {
        problems.push({ path: `event_source.files.${i}`, message: `no such file: ${path}` });
        continue;
      }
      const file = new lib.File(path, "r");
      const datasets = new Map<string, Dataset>();
      let events: number | undefined;
      const here: FieldInfo[] = [];
      for (const [name, d] of wanted) {
        const entity = file.get(d.path);
        if (!entity || !("shape" in entity) || !(entity as Dataset).shape) {
          problems.push({ path: `data_sources.${name}.path`, message: `${path} has no dataset ${d.path}` });
          continue;
        }
        const dataset = entity as Dataset;
        const shape = dataset.shape!;
        const dtype = dtypeOfMetadata(dataset.metadata as { type: number; size: number; signed: boolean });
        if (!dtype || shape.length === 0) {
          problems.push({ path: `data_sources.${name}.path`, message: `${path}:${d.path} is not a numeric array with events along axis 0` });
          continue;
        }
        if (!(dataset.metadata as { littleEndian: boolean }).littleEndian) {
          problems.push({
            path: `data_sources.${name}.path`,
            message: `${path}:${d.path} is big-endian; only little-endian datasets are streamed (rewrite it with h5py, dtype "<")`,
          });
          continue;
        }
        if (events !== undefined && shape[0] !== events) {
          problems.push({ path: `data_sources.${name}.path`, message: `${path}:${d.path} has ${shape[0]} events, other datasets of the file ${events}` });
        }
        events ??= shape[0]!;
        datasets.set(name, dataset);
        here.push({ name, dtype, shape: shape.slice(1), description: `${d.path} in the HDF5 files` });
      }
      if (fields) {
        for (const f of here) {
          const first = fields.find((g) => g.name === f.name);
          if (first && (first.dtype !== f.dtype || first.shape.join("x") !== f.shape.join("x"))) {
            problems.push({
              path: `data_sources.${f.name}`,
              message: `shape mismatch across events: ${path} has ${f.dtype}[${f.shape}], ${source.files[0]} has ${first.dtype}[${first.shape}]`,
            });
          }
        }
      }
      fields ??= here;
      files.push({ path, file, datasets, events: events ?? 0 });
    }
    const result = new Hdf5Source(files, fields ?? [], source);
    if (source.start_event > result.eventCount)
      problems.push({ path: "event_source.start_event", message: `beyond the ${result.eventCount} events of the files` });
    if (problems.length) {
      result.close();
      throw new ConfigError(problems, "the HDF5 event source");
    }
    return result;
  }

  fields(): FieldInfo[] {
    return this.#fields;
  }

  event(index: number): DetectorEvent {
    let f = this.#offsets.length - 1;
    while (this.#offsets[f]! > index) f--;
    const file = this.#files[f]!;
    const local = index - this.#offsets[f]!;
    const fields: Record<string, NdArray> = {};
    for (const info of this.#fields) {
      const data = typedView(info.dtype as Dtype, readRows(file.datasets.get(info.name)!, local, local + 1, file.path));
      fields[info.name] = { dtype: info.dtype as Dtype, shape: info.shape, data };
    }
    return { index, timeNs: 0n, fields };
  }

  async *events(rank: number, ranks: number, start: number, signal: AbortSignal): AsyncGenerator<DetectorEvent> {
    for (const position of positionsOf(rank, ranks, start, this.eventCount)) {
      signal.throwIfAborted();
      yield this.event(this.#order ? this.#order[position]! : position);
    }
  }

  close(): void {
    for (const f of this.#files) f.file.close();
  }
}
