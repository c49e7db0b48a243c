/**
 * The producer pipeline, as async iterables with backpressure end to end:
 * event source -> optional skip_incomplete_events filter -> processing steps
 * -> batcher -> serializer. Handlers (buffer, file, the Produce stream)
 * consume what it yields; nothing is read ahead of what they take.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { ArraySchema, ColumnsSchema, SerializedPayloadSchema, EventBatchSchema, PayloadFormat, type EventBatch } from "../../gen/lclstream/data/v1/data_pb.js";
import { ConfigError, type ProducerConfig } from "./config.js";
import type { DetectorEvent, EventSource, FieldInfo } from "./event.js";
import { h5InMemory, h5Dtype } from "./hdf5.js";
import { bytesOf, dtypeToProto, size, zeros, type NdArray } from "./ndarray.js";
import { createStep } from "./processing.js";
import { Hdf5Source } from "./sources/hdf5.js";
import { RandomSource } from "./sources/random.js";
import { SyntheticSource } from "./sources/synthetic.js";

/** Opens the event source a config names. */
export async function openSource(config: ProducerConfig): Promise<EventSource> {
  switch (config.event_source.type) {
    case "synthetic":
      return new SyntheticSource(config);
    case "random":
      return new RandomSource(config);
    case "hdf5":
      return Hdf5Source.open(config);
  }
}

/** The fields of every batch: the source's, as the processing steps change them. Throws a ConfigError naming a step that does not fit. */
export function pipelineFields(config: ProducerConfig, source: EventSource): FieldInfo[] {
  return config.processing_pipeline.reduce((fields, step, i) => {
    try {
      return createStep(step).fields(fields);
    } catch (error) {
      throw new ConfigError([{ path: `processing_pipeline.${i}`, message: (error as Error).message }], "the processing pipeline");
    }
  }, source.fields());
}

/**
 * Checks that the processing steps fit the source's fields before anything
 * runs, for the sources whose fields the config alone gives; an HDF5
 * source's come from its files and are checked when a producer opens them.
 */
export function checkPipeline(config: ProducerConfig): void {
  if (config.event_source.type === "hdf5") return;
  pipelineFields(config, config.event_source.type === "synthetic" ? new SyntheticSource(config) : new RandomSource(config));
}

/** A batch as the pipeline hands it on: the message, its encoding (made once), and its event count. */
export interface ProducedBatch {
  batch: EventBatch;
  bytes: Uint8Array;
  events: number;
  /** What a file handler writes: the HDF5 file, or the encoded batch. */
  fileBytes: Uint8Array;
  fileSuffix: string;
}

export interface RunOptions {
  rank: number;
  ranks: number;
  /** Linear position in the source to start from (resume). */
  startEvent?: number;
  /** Stop after this many of this rank's events; 0 or unset: all. */
  maxEvents?: number;
  /** Stream name put in every batch (`streams/{id}`), when publishing to a buffer. */
  stream?: string;
  signal: AbortSignal;
}

/** Stacks events into arrays with a leading batch dimension. */
function stack(events: DetectorEvent[], fields: FieldInfo[]): Record<string, NdArray> {
  const out: Record<string, NdArray> = {};
  for (const f of fields) {
    const per = size(f.shape);
    const a = zeros(f.dtype, [events.length, ...f.shape]);
    events.forEach((e, i) => {
      const src = e.fields[f.name]!;
      if (src.data.length !== per)
        throw new Error(
          `event ${e.index}: field ${f.name} has ${src.data.length} elements, the catalog says ${per} ([${f.shape}]): shape mismatch across events`,
        );
      (a.data as Uint8Array).set(src.data as Uint8Array, i * per);
    });
    out[f.name] = a;
  }
  return out;
}

/** Serializes stacked fields as columnar `lclstream.data.v1` arrays. */
function nativePayload(fields: Record<string, NdArray>): EventBatch["payload"] {
  return {
    case: "columns",
    value: create(ColumnsSchema, {
      fields: Object.fromEntries(
        Object.entries(fields).map(([name, a]) => [name, create(ArraySchema, { dtype: dtypeToProto[a.dtype], shape: a.shape.map(BigInt), data: bytesOf(a) })]),
      ),
    }),
  };
}

/** Serializes stacked fields as one HDF5 file (h5py-readable), datasets by path. */
async function hdf5Payload(
  fields: Record<string, NdArray>,
  config: Extract<ProducerConfig["data_serializer"], { type: "hdf5" }>,
  indices: bigint[],
  times: bigint[],
): Promise<Uint8Array> {
  const { lib, fs } = await h5InMemory();
  const path = `/batch-${++hdf5Files}.h5`;
  try {
    writeHdf5File(lib, path, fields, config, indices, times);
    return fs.readFile(path);
  } finally {
    try {
      fs.unlink(path);
    } catch {
      // never created: the write failed before the file existed
    }
  }
}

/** Names the in-memory files apart. */
let hdf5Files = 0;

function writeHdf5File(
  lib: Awaited<ReturnType<typeof h5InMemory>>["lib"],
  path: string,
  fields: Record<string, NdArray>,
  config: Extract<ProducerConfig["data_serializer"], { type: "hdf5" }>,
  indices: bigint[],
  times: bigint[],
): void {
  const file = new lib.File(path, "w");
  const groups = new Set<string>();
  const write = (datasetPath: string, a: NdArray, compress: boolean) => {
    const parts = datasetPath.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const g = parts.slice(0, i).join("/");
      if (!groups.has(g)) {
        file.create_group(g);
        groups.add(g);
      }
    }
    file.create_dataset({
      name: parts.join("/"),
      data: a.data,
      shape: a.shape,
      dtype: h5Dtype[a.dtype],
      ...(compress && a.shape.length > 0 ? { compression: "gzip" as const, compression_opts: config.gzip_level, chunks: [1, ...a.shape.slice(1)] } : {}),
    });
  };
  try {
    for (const [name, a] of Object.entries(fields)) write(config.paths[name] ?? `/data/${name}`, a, config.compression === "gzip");
    write("/lclstream/event_index", { dtype: "uint64", shape: [indices.length], data: BigUint64Array.from(indices) }, false);
    write("/lclstream/event_time_ns", { dtype: "int64", shape: [times.length], data: BigInt64Array.from(times) }, false);
  } finally {
    file.close();
  }
}

/**
 * Runs the pipeline for one rank and yields its serialized batches, in
 * order, numbered from 0. Events are read only as batches are taken.
 */
export async function* runPipeline(config: ProducerConfig, source: EventSource, options: RunOptions): AsyncGenerator<ProducedBatch> {
  const steps = config.processing_pipeline.map(createStep);
  const fields = pipelineFields(config, source);
  const sourceFields = source.fields().map((f) => f.name);
  const serializer = config.data_serializer;
  let pending: DetectorEvent[] = [];
  let seq = 0;
  let taken = 0;

  const flush = async (): Promise<ProducedBatch> => {
    const events = pending;
    pending = [];
    const stacked = stack(events, fields);
    const indices = events.map((e) => BigInt(e.index));
    const times = events.map((e) => e.timeNs);
    let payload: EventBatch["payload"];
    let fileBytes: Uint8Array | undefined;
    if (serializer.type === "hdf5") {
      fileBytes = await hdf5Payload(stacked, serializer, indices, times);
      payload = { case: "serialized", value: create(SerializedPayloadSchema, { format: PayloadFormat.HDF5, data: fileBytes }) };
    } else {
      payload = nativePayload(stacked);
    }
    const batch = create(EventBatchSchema, {
      stream: options.stream ?? "",
      producerRank: options.rank,
      seq: BigInt(seq++),
      eventIndices: indices,
      eventTimeUnixNs: times,
      payload,
    });
    const bytes = toBinary(EventBatchSchema, batch);
    return { batch, bytes, events: events.length, fileBytes: fileBytes ?? bytes, fileSuffix: serializer.type === "hdf5" ? "h5" : "pb" };
  };

  // A resume position given to the run wins over the config's.
  const start = options.startEvent || (config.event_source.type === "hdf5" ? config.event_source.start_event : 0);
  for await (const event of source.events(options.rank, options.ranks, start, options.signal)) {
    if (options.maxEvents && taken >= options.maxEvents) break;
    taken++;
    if (config.skip_incomplete_events && sourceFields.some((name) => !event.fields[name])) continue;
    for (const step of steps) step.apply(event);
    pending.push(event);
    if (pending.length >= config.batch_size) yield await flush();
  }
  if (pending.length) yield await flush();
}
