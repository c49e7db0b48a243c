/**
 * The producer pipeline, as async iterables with backpressure end to end:
 * event source -> optional skip_incomplete_events filter -> processing steps
 * -> batcher -> serializer. Handlers (buffer, file, the Produce stream)
 * consume what it yields; nothing is read ahead of what they take.
 */
import { create } from "@bufbuild/protobuf";
import { ByteParts } from "../common/byte-parts.js";
import { encodeParts } from "../common/grpc-frames.js";
import { ArraySchema, ColumnsSchema, SerializedPayloadSchema, EventBatchSchema, PayloadFormat, type EventBatch } from "../../gen/lclstream/data/v1/data_pb.js";
import { ConfigError, type ProducerConfig } from "./config.js";
import { type DetectorEvent, type EventSource, type FieldInfo, holdsOver } from "./event.js";
import { bitshuffleFilter, h5InMemory, h5Dtype, zfpFilter } from "./hdf5.js";
import { bytesOf, dtypeToProto, size, zeros, type NdArray } from "./ndarray.js";
import { createPeaknetStep, createStep, type Step } from "./processing.js";
import { Hdf5Source } from "./sources/hdf5.js";
import { createSimplonSerializer } from "./simplon.js";
import { InternalSource } from "./sources/internal.js";
import { Psana2Source, type RankShare } from "./sources/psana.js";

/** Says that psana1 cannot run here (the check of a config that names it fails with this). */
function psana1Refused(): ConfigError {
  return new ConfigError(
    [
      {
        path: "event_source.type",
        message:
          "Psana1EventSource cannot run here: psana1 (LCLS-I) is not published for this platform; convert the run to HDF5 for HDF5EventSource, or use Psana2EventSource for LCLS-II data",
      },
    ],
    "the event source",
  );
}

/** Opens the event source a config names; `reading` says which rank's events will be read, when known (psana starts reading them at once). */
export async function openSource(config: ProducerConfig, reading?: RankShare): Promise<EventSource> {
  switch (config.event_source.type) {
    case "InternalEventSource":
      return new InternalSource(config);
    case "HDF5EventSource":
      return Hdf5Source.open(config);
    case "Psana1EventSource":
      throw psana1Refused();
    case "Psana2EventSource":
      return Psana2Source.open(config, reading);
  }
}

/** The per-event steps of a config's pipeline: its own steps, then lclstreamer's PeakNet padding. */
function stepsOf(config: ProducerConfig): Step[] {
  const p = config.processing_pipeline;
  const steps = p.steps.map(createStep);
  if (p.type === "PeaknetPreprocessingPipeline") steps.push(createPeaknetStep(p));
  return steps;
}

/** The fields of every batch: the source's, as the processing steps change them. Throws a ConfigError naming a step that does not fit. */
export function pipelineFields(config: ProducerConfig, source: EventSource): FieldInfo[] {
  const steps = stepsOf(config);
  return steps.reduce((fields, step, i) => {
    try {
      return step.fields(fields);
    } catch (error) {
      throw new ConfigError([{ path: `processing_pipeline.steps.${i}`, message: (error as Error).message }], "the processing pipeline");
    }
  }, source.fields());
}

/**
 * Checks what can be checked before anything runs: that the processing steps
 * fit the source's fields, for the sources whose fields the config alone gives
 * (an HDF5 source's come from its files, and are checked when a producer opens
 * them), and that the source and serializer can run here. Returns notes on
 * what will be left out.
 */
export function checkPipeline(config: ProducerConfig): string[] {
  if (config.event_source.type === "Psana1EventSource") throw psana1Refused();
  const notes: string[] = [];
  const serializer = config.data_serializer;
  if (serializer.type === "HDF5BinarySerializer" && serializer.compression === "gzip_with_shuffle") {
    notes.push(
      "data_serializer.compression: gzip_with_shuffle is written as gzip without the shuffle filter (h5wasm sets one filter per dataset); the values are the same",
    );
  }
  if (serializer.type === "HDF5BinarySerializer" && serializer.compression === "zfp") {
    notes.push(
      "data_serializer.compression: zfp is not applied to float64 fields (its plugin for h5wasm cannot encode doubles), nor where it cannot apply; those are written uncompressed",
    );
  }
  if (config.event_source.type !== "InternalEventSource") return notes;
  const fields = pipelineFields(config, new InternalSource(config));
  if (serializer.type === "HDF5BinarySerializer" && serializer.fields) {
    const unmapped = fields.map((f) => f.name).filter((name) => !(name in serializer.fields!));
    if (unmapped.length)
      notes.push(
        `data_serializer.fields: ${unmapped.join(", ")} not listed, so not written (lclstreamer's documentation says the same; its code stops instead)`,
      );
  }
  return notes;
}

/** A batch as the pipeline hands it on: the message, its encoding (made once), and its event count. */
export interface ProducedBatch {
  batch: EventBatch;
  /** The encoded batch, its arrays by reference (see encodeParts): what the buffer handler sends as it is. */
  bytes: ByteParts;
  events: number;
  /** What lclstreamer's handlers write, a file or a message each: the HDF5 file, the SIMPLON messages, or the encoded batch (made when asked for). */
  messages: Uint8Array[];
  /** Events left out so far as incomplete (skip_incomplete_events). */
  skipped: number;
  /**
   * A hold on the memory the batch reads (its events' arrays, when their source
   * reuses memory); the returned function lets go. The source gets the memory
   * back when every hold taken is let go, so whoever still reads the batch after
   * its turn must hold it.
   */
  retain(): () => void;
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
    const only = events.length === 1 ? events[0]!.fields[f.name] : undefined;
    if (only && only.data.length === per) {
      // A batch of one is its event's array: no copy.
      out[f.name] = { dtype: f.dtype, shape: [1, ...f.shape], data: only.data };
      continue;
    }
    const a = zeros(f.dtype, [events.length, ...f.shape]);
    events.forEach((e, i) => {
      const src = e.fields[f.name];
      if (!src) {
        // A source gave nothing for this event (psana's None): lclstreamer's fill, NaN or -999 (skip_incomplete_events drops such events).
        const fill = f.dtype.startsWith("float") ? Number.NaN : f.dtype.startsWith("int") ? -999 : 0;
        const part = a.data.subarray(i * per, (i + 1) * per);
        if (part instanceof BigInt64Array || part instanceof BigUint64Array) part.fill(BigInt(fill));
        else part.fill(fill);
        return;
      }
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

type Hdf5Config = Extract<ProducerConfig["data_serializer"], { type: "HDF5BinarySerializer" }>;

/**
 * Serializes stacked fields as lclstreamer's HDF5BinarySerializer does: one
 * HDF5 file per batch, each listed field at its path (every field at
 * /data/<name> when none are listed), chunks of one event, the compression
 * filter lclstreamer's h5py and hdf5plugin calls set, no attributes.
 */
async function hdf5Payload(fields: Record<string, NdArray>, config: Hdf5Config): Promise<Uint8Array> {
  const { lib, fs } = await h5InMemory();
  const path = `/batch-${++hdf5Files}.h5`;
  try {
    writeHdf5File(lib, path, fields, config);
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

/**
 * Whether ZFP takes a dataset: 32- and 64-bit numbers in chunks with a
 * dimension over 1. h5py sets filters as optional, so HDF5 skips ZFP where it
 * cannot apply; h5wasm sets them as mandatory, so here such a dataset is
 * written without it (the same values, as h5py writes them). Not float64
 * either: h5wasm-plugins' ZFP calls ldexp, which h5wasm 0.10 does not export,
 * and fails on doubles.
 */
const zfpApplies = (a: NdArray) => ["float32", "int32", "int64"].includes(a.dtype) && a.shape.slice(1).some((n) => n > 1);

/** h5wasm's filter id and settings for a compression, as h5py and hdf5plugin set them for lclstreamer. */
function filterOf(config: Hdf5Config, a: NdArray): { compression: number; compression_opts: number[] } | undefined {
  const level = config.compression_level;
  switch (config.compression) {
    case "gzip":
    case "gzip_with_shuffle":
      return { compression: 1, compression_opts: [level] };
    case "bitshuffle_with_lz4":
      return { compression: bitshuffleFilter, compression_opts: [0, 2] };
    case "bitshuffle_with_zstd":
      return { compression: bitshuffleFilter, compression_opts: [0, 3, level] };
    case "zfp":
      return zfpApplies(a) ? { compression: zfpFilter, compression_opts: [] } : undefined;
    default:
      return undefined;
  }
}

function writeHdf5File(lib: Awaited<ReturnType<typeof h5InMemory>>["lib"], path: string, fields: Record<string, NdArray>, config: Hdf5Config): void {
  const file = new lib.File(path, "w");
  const groups = new Set<string>();
  try {
    for (const [name, a] of Object.entries(fields)) {
      const datasetPath = config.fields ? config.fields[name] : `/data/${name}`;
      if (datasetPath === undefined) continue;
      // h5py makes the groups on the way; "//waveform" is "/waveform".
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
        chunks: [1, ...a.shape.slice(1)],
        ...filterOf(config, a),
      });
    }
  } finally {
    file.close();
  }
}

/**
 * Runs the pipeline for one rank and yields its serialized batches, in
 * order, numbered from 0. Events are read only as batches are taken.
 */
/** What a run ends with: what lclstreamer's handlers write after the last batch (SIMPLON's stop), and the events left out. */
export interface PipelineEnd {
  trailer: Uint8Array[];
  skipped: number;
}

export async function* runPipeline(config: ProducerConfig, source: EventSource, options: RunOptions): AsyncGenerator<ProducedBatch, PipelineEnd> {
  const steps = stepsOf(config);
  const fields = pipelineFields(config, source);
  const sourceFields = source.fields().map((f) => f.name);
  const serializer = config.data_serializer;
  const simplon = serializer.type === "SimplonBinarySerializer" ? createSimplonSerializer(serializer, options.rank, options.ranks) : undefined;
  let pending: DetectorEvent[] = [];
  let seq = 0;
  let taken = 0;
  let skipped = 0;

  const flush = async (): Promise<ProducedBatch> => {
    const events = pending;
    pending = [];
    const stacked = stack(events, fields);
    const indices = events.map((e) => BigInt(e.index));
    const times = events.map((e) => e.timeNs);
    let payload: EventBatch["payload"];
    let messages: Uint8Array[] | undefined;
    if (serializer.type === "HDF5BinarySerializer") {
      messages = [await hdf5Payload(stacked, serializer)];
      payload = { case: "serialized", value: create(SerializedPayloadSchema, { format: PayloadFormat.HDF5, data: messages[0] }) };
    } else if (simplon) {
      messages = simplon.batch(events);
      // The buffer's batch holds the image message (lclstreamer's handlers also get the start message).
      const image = messages.at(-1)?.[0] === 0x6d ? messages.at(-1)! : new Uint8Array(0);
      payload = { case: "serialized", value: create(SerializedPayloadSchema, { format: PayloadFormat.SIMPLON_CBOR, data: image }) };
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
    const bytes = new ByteParts(encodeParts(EventBatchSchema, batch));
    const written = messages;
    return {
      batch,
      bytes,
      events: events.length,
      get messages() {
        return written ?? [bytes.contiguous()];
      },
      skipped,
      retain: holdsOver(events.flatMap((e) => (e.release ? [e.release] : []))),
    };
  };

  // A resume position given to the run wins over the config's.
  const start = options.startEvent || (config.event_source.type === "HDF5EventSource" ? config.event_source.start_event : 0);
  for await (const event of source.events(options.rank, options.ranks, start, options.signal)) {
    if (options.maxEvents && taken >= options.maxEvents) break;
    taken++;
    if (config.skip_incomplete_events && sourceFields.some((name) => !event.fields[name])) {
      skipped++;
      event.release?.();
      continue;
    }
    for (const step of steps) step.apply(event);
    pending.push(event);
    if (pending.length >= config.processing_pipeline.batch_size) yield await flush();
  }
  if (pending.length) yield await flush();
  return { trailer: simplon?.end() ?? [], skipped };
}
