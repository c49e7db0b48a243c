/**
 * The producer's configuration: lclstreamer's own layout (its
 * `models/parameters.py`), with its type names, field names and defaults, so
 * that an lclstreamer config runs unchanged. lclstream's own sources, steps,
 * serializer and handler are extra types in the same style:
 *
 *   source_identifier: ""                    # names the run (psana: exp=...,run=...)
 *   skip_incomplete_events: false
 *   event_source: { type: InternalEventSource, number_of_events_to_generate: 76 }
 *   data_sources:                            # the fields of every event, by name
 *     random: { type: GenericRandomNumpyArray, array_shape: "20,2", array_dtype: float32 }
 *   processing_pipeline: { type: BatchProcessingPipeline, batch_size: 10 }
 *   data_serializer: { type: HDF5BinarySerializer, compression: null, fields: { random: /data/random } }
 *   data_handlers: [ { type: BinaryFileWritingDataHandler, write_directory: out } ]
 *
 * Where lclstreamer accepts keys it ignores (inside InternalEventSource and
 * inside its own data sources), they are accepted and reported as notes;
 * everywhere else an unknown key is refused, as lclstreamer refuses it. The
 * same object is the `producer` of a data request.
 */
import { z } from "zod";
import { type Dtype, dtypes } from "./ndarray.js";
import { translateOldDialect } from "./old-dialect.js";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

/** numpy's names for the dtypes the producer handles (lclstreamer passes its dtype strings to numpy). */
const numpyDtypes: Record<string, Dtype> = {
  ...Object.fromEntries(dtypes.map((d) => [d, d])),
  float: "float64",
  double: "float64",
  single: "float32",
  int: "int64",
  uint: "uint64",
  bool_: "bool",
  f4: "float32",
  f8: "float64",
  i1: "int8",
  i2: "int16",
  i4: "int32",
  i8: "int64",
  u1: "uint8",
  u2: "uint16",
  u4: "uint32",
  u8: "uint64",
  "<f4": "float32",
  "<f8": "float64",
  "<i2": "int16",
  "<i4": "int32",
  "<i8": "int64",
  "<u2": "uint16",
  "<u4": "uint32",
  "<u8": "uint64",
};
const numpyDtype = z
  .string()
  .refine((s) => s in numpyDtypes, { error: `a numpy dtype the producer handles: ${dtypes.join(", ")} (or numpy's short names, such as f4)` })
  .transform((s) => numpyDtypes[s]!);

/** lclstreamer writes shapes as strings of comma-separated sizes ("20,2"); a list of sizes is accepted too. */
const arrayShape = z.union([z.string().regex(/^\s*\d+(\s*,\s*\d+)*\s*$/), z.array(positiveInt).max(8)], {
  error: 'sizes separated by commas, as lclstreamer writes them ("20,2"), or a list of sizes',
});

/** Detector geometries of real instruments (frames are panels x height x width, or height x width). */
export const geometries = {
  jungfrau4M: { shape: [2048, 2048], dtype: "uint16" },
  jungfrau1M: { shape: [1024, 1024], dtype: "uint16" },
  epix10k2M: { shape: [16, 352, 384], dtype: "uint16" },
  rayonix: { shape: [1920, 1920], dtype: "uint16" },
  small: { shape: [256, 256], dtype: "uint16" },
} as const;

// ---- Event sources -------------------------------------------------------

const internalEventSource = z.looseObject({
  type: z.literal("InternalEventSource"),
  number_of_events_to_generate: nonNegativeInt,
  // lclstream's: the seed of every generated value, the facility's rate for timestamps, and real-time pacing.
  seed: nonNegativeInt.default(1),
  /** Events per second of facility time for timestamps (120 Hz at LCLS); 0 produces as fast as possible. */
  rate_hz: z.number().nonnegative().default(120),
  paced: z.boolean().default(false),
});

const psana1EventSource = z.strictObject({ type: z.literal("Psana1EventSource") });
const psana2EventSource = z.strictObject({ type: z.literal("Psana2EventSource") });

/** lclstream's: events along axis 0 of datasets in HDF5/CXI files. */
const hdf5EventSource = z.strictObject({
  type: z.literal("HDF5EventSource"),
  files: z.array(z.string().min(1)).min(1),
  shuffle: z.boolean().default(false),
  seed: nonNegativeInt.default(1),
  /** Resume from this linear index of the (shuffled) event order. */
  start_event: nonNegativeInt.default(0),
});

export const eventSourceSchema = z.discriminatedUnion("type", [internalEventSource, psana1EventSource, psana2EventSource, hdf5EventSource]);

// ---- Data sources --------------------------------------------------------

const psanaDetector = <T extends string>(type: T) =>
  z
    .looseObject({
      type: z.literal(type),
      psana_name: z.string().min(1),
      /** A dotted path (raw.calib) or a list of them; optional for an EPICS PV (a name with ":"). */
      psana_fields: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: "a dotted path such as raw.calib, or a list of them" }).optional(),
      dtype: z.string().default("float64"),
    })
    .refine((s) => s.psana_fields !== undefined || s.psana_name.includes(":"), {
      error: "is required unless psana_name is an EPICS PV (a name with ':')",
      path: ["psana_fields"],
    });

/** lclstreamer's data sources. It reads their keys loosely: unknown ones are ignored (and reported). */
const lclstreamerDataSources = [
  z.looseObject({ type: z.literal("GenericRandomNumpyArray"), array_shape: arrayShape, array_dtype: numpyDtype }),
  z.looseObject({ type: z.literal("IntValue"), value: z.number().int() }),
  z.looseObject({ type: z.literal("FloatValue"), value: z.number() }),
  z.looseObject({ type: z.literal("SourceIdentifier") }),
  z.looseObject({ type: z.literal("Psana1Timestamp") }),
  psanaDetector("Psana1DetectorInterface"),
  z.looseObject({ type: z.literal("Psana2Timestamp") }),
  psanaDetector("Psana2DetectorInterface"),
  z.looseObject({ type: z.literal("Psana2RunInfo") }),
] as const;

/** lclstream's: the synthetic facility's detectors (for InternalEventSource) and HDF5 datasets. */
const lclstreamDataSources = [
  z.strictObject({
    type: z.literal("SyntheticAreaDetector"),
    geometry: z
      .union([z.enum(Object.keys(geometries) as [keyof typeof geometries]), z.strictObject({ shape: z.array(positiveInt).max(8), dtype: z.enum(dtypes) })], {
        error: `a geometry name (${Object.keys(geometries).join(", ")}) or { shape, dtype }`,
      })
      .default("jungfrau4M"),
    /** Mean background level and its noise, in ADU. */
    background: z.number().nonnegative().default(100),
    noise: z.number().nonnegative().default(8),
    /** Bragg peaks per frame (uniform in [min, max]) and their intensity and width. */
    peaks: z
      .strictObject({
        min: nonNegativeInt.default(5),
        max: nonNegativeInt.default(30),
        intensity: z.number().positive().default(2000),
        sigma: z.number().positive().default(1.2),
      })
      .default({ min: 5, max: 30, intensity: 2000, sigma: 1.2 }),
    /** Also emit `<name>_peaks_truth` (the injected peaks), for training and checks. */
    truth: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal("SyntheticDigitizer"),
    channels: positiveInt.max(64).default(4),
    samples: positiveInt.max(1 << 20).default(4096),
    /** Time-of-flight hits per channel (uniform in [min, max]). */
    hits: z.strictObject({ min: nonNegativeInt.default(2), max: nonNegativeInt.default(12) }).default({ min: 2, max: 12 }),
    amplitude: z.number().positive().default(400),
    /** Pulse width (Gaussian sigma) in samples. */
    width: z.number().positive().default(2.5),
    /** Time between samples, ns (6.4 GS/s by default): the viewer's time axis. */
    sample_interval_ns: z.number().positive().default(0.15625),
    noise: z.number().nonnegative().default(4),
    baseline: z.number().default(0),
    truth: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal("SyntheticScalar"),
    mean: z.number().default(1),
    sigma: z.number().nonnegative().default(0.1),
    dtype: z.enum(["float32", "float64"]).default("float64"),
  }),
  z.strictObject({ type: z.literal("SyntheticTimestamp") }),
  z.strictObject({
    type: z.literal("HDF5Dataset"),
    /** Path of the dataset inside each file; events along axis 0. */
    path: z.string().startsWith("/"),
  }),
] as const;

export const dataSourceSchema = z.discriminatedUnion("type", [...lclstreamerDataSources, ...lclstreamDataSources]);

/** The data sources each event source fills. */
export const dataSourcesOf: Record<EventSourceConfig["type"], DataSourceConfig["type"][]> = {
  InternalEventSource: [
    "GenericRandomNumpyArray",
    "IntValue",
    "FloatValue",
    "SyntheticAreaDetector",
    "SyntheticDigitizer",
    "SyntheticScalar",
    "SyntheticTimestamp",
  ],
  Psana1EventSource: ["GenericRandomNumpyArray", "Psana1Timestamp", "Psana1DetectorInterface"],
  Psana2EventSource: ["GenericRandomNumpyArray", "Psana2Timestamp", "Psana2DetectorInterface", "Psana2RunInfo"],
  HDF5EventSource: ["HDF5Dataset"],
};

// ---- Processing ----------------------------------------------------------

const dataSource = z.string().min(1);
const anchor = z.enum(["center", "bottom-right"]);

/** lclstream's processing steps, applied to each event in order before batching. */
export const stepSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("PeakFinder"),
    data_source: dataSource,
    /** A pixel is a peak candidate above mean + snr * sigma of its neighbourhood. */
    snr: z.number().positive().default(6),
    /** Also above this absolute level (ADU over background). */
    min_intensity: z.number().nonnegative().default(100),
    min_pixels: positiveInt.default(2),
    max_pixels: positiveInt.default(200),
    /** Half-size of the square neighbourhood used for the local background. */
    radius: positiveInt.max(16).default(4),
    max_peaks: positiveInt.max(4096).default(256),
    /** A frame with at least this many peaks is a hit. */
    min_peaks_for_hit: nonNegativeInt.default(10),
  }),
  z.strictObject({
    type: z.literal("TimeOfFlightHits"),
    data_source: dataSource,
    /** Constant-fraction discrimination: fraction, delay in samples, and a threshold on the pulse height. */
    fraction: z.number().positive().max(1).default(0.5),
    delay: positiveInt.default(3),
    threshold: z.number().positive().default(50),
    /** Pulses are negative-going (MCP) when true. */
    negative: z.boolean().default(true),
    max_hits: positiveInt.max(4096).default(64),
  }),
  z.strictObject({ type: z.literal("RegionOfInterest"), data_source: dataSource, y0: nonNegativeInt, y1: positiveInt, x0: nonNegativeInt, x1: positiveInt }),
  z.strictObject({ type: z.literal("Binning"), data_source: dataSource, factor: positiveInt.max(64) }),
  z.strictObject({ type: z.literal("Threshold"), data_source: dataSource, value: z.number() }),
  z.strictObject({
    type: z.literal("PadCrop"),
    data_source: dataSource,
    height: positiveInt,
    width: positiveInt,
    anchor: anchor.default("center"),
    channel_dim: z.boolean().default(true),
  }),
]);

const batchSize = positiveInt.max(100_000);
/** lclstream's: steps before batching (lclstreamer has none, so a config that lclstreamer reads never has them). */
const steps = z.array(stepSchema).default([]);

export const processingPipelineSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("BatchProcessingPipeline"), batch_size: batchSize, steps }),
  z.strictObject({
    type: z.literal("PeaknetPreprocessingPipeline"),
    batch_size: batchSize,
    target_height: positiveInt,
    target_width: positiveInt,
    pad_style: anchor.default("center"),
    add_channel_dim: z.boolean().default(true),
    num_channels: positiveInt.max(64).default(1),
    steps,
  }),
]);

// ---- Serializers ---------------------------------------------------------

export const hdf5Compressions = ["gzip", "gzip_with_shuffle", "bitshuffle_with_lz4", "bitshuffle_with_zstd", "zfp"] as const;

export const serializerSchema = z.discriminatedUnion("type", [
  z
    .strictObject({
      type: z.literal("HDF5BinarySerializer"),
      compression_level: z.number().int().default(3),
      compression: z.enum(hdf5Compressions).nullable().default(null),
      /**
       * Dataset path per field; only these fields are written. Required by
       * lclstreamer; here, leaving it out writes every field at /data/<name>.
       */
      fields: z.record(z.string(), z.string().regex(/^\/*[^/]/, "an HDF5 dataset path, such as /data/frames")).optional(),
    })
    .superRefine((s, ctx) => {
      const [min, max] = s.compression === "bitshuffle_with_zstd" ? [0, 22] : s.compression?.startsWith("gzip") ? [0, 9] : [-Infinity, Infinity];
      if (s.compression_level < min || s.compression_level > max) {
        ctx.addIssue({ code: "custom", path: ["compression_level"], message: `${s.compression} takes a level from ${min} to ${max}` });
      }
    }),
  z.strictObject({
    type: z.literal("SimplonBinarySerializer"),
    data_source_to_serialize: z.string().min(1),
    polarization_fraction: z.number(),
    polarization_axis: z.array(z.number()),
    data_collection_rate: z.string(),
    detector_name: z.string(),
    detector_type: z.string(),
  }),
  /** lclstream's: columnar `lclstream.data.v1` arrays, every field. */
  z.strictObject({ type: z.literal("NativeBinarySerializer") }),
]);

/** The data sources lclstreamer requires beside a SimplonBinarySerializer. */
const simplonDataSources = ["timestamp", "detector_data", "detector_geometry", "run_info"];

// ---- Handlers ------------------------------------------------------------

export const handlerSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("BinaryDataStreamingDataHandler"),
    urls: z.array(z.string().min(1)),
    role: z.enum(["server", "client"]).default("server"),
    library: z.literal("zmq").default("zmq"),
    socket_type: z.literal("push").default("push"),
  }),
  z.strictObject({
    type: z.literal("BinaryFileWritingDataHandler"),
    file_prefix: z.string().default(""),
    file_suffix: z.string().default("h5"),
    /** lclstreamer's default is the working directory. */
    write_directory: z.string().min(1).default("."),
  }),
  /** lclstream's: publish to a buffer stream (what a data request's producers do). */
  z.strictObject({
    type: z.literal("BufferStreamingDataHandler"),
    /** The buffer and stream; by default from LCLSTREAM_BUFFER_URL, LCLSTREAM_STREAM and LCLSTREAM_PUBLISH_TOKEN. */
    url: z.url().optional(),
    stream: z.string().optional(),
    token: z.string().optional(),
  }),
]);

// ---- The whole ------------------------------------------------------------

export const producerConfigSchema = z
  .strictObject({
    source_identifier: z.string(),
    skip_incomplete_events: z.boolean(),
    event_source: eventSourceSchema,
    data_sources: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, "letters, digits, _, . and -, starting with a letter or _"), dataSourceSchema),
    processing_pipeline: processingPipelineSchema,
    data_serializer: serializerSchema,
    data_handlers: z.array(handlerSchema),
  })
  .superRefine((config, ctx) => {
    const allowed = dataSourcesOf[config.event_source.type];
    for (const [name, source] of Object.entries(config.data_sources)) {
      if (source.type === "SourceIdentifier") {
        ctx.addIssue({
          code: "custom",
          path: ["data_sources", name, "type"],
          message: "SourceIdentifier makes a string, which no event source can stream (lclstreamer's cannot load it either); leave it out",
        });
      } else if (!allowed.includes(source.type)) {
        ctx.addIssue({
          code: "custom",
          path: ["data_sources", name, "type"],
          message: `${config.event_source.type} cannot fill a ${source.type}; it fills ${allowed.join(", ")}`,
        });
      }
    }
    if (config.data_serializer.type === "SimplonBinarySerializer") {
      const missing = simplonDataSources.filter((name) => !(name in config.data_sources));
      if (missing.length) {
        ctx.addIssue({
          code: "custom",
          path: ["data_sources"],
          message: `SimplonBinarySerializer needs the data sources ${missing.join(", ")} (as lclstreamer does)`,
        });
      }
    }
  });

export type ProducerConfig = z.output<typeof producerConfigSchema>;
export type EventSourceConfig = z.output<typeof eventSourceSchema>;
export type DataSourceConfig = z.output<typeof dataSourceSchema>;
export type StepConfig = z.output<typeof stepSchema>;
export type ProcessingPipelineConfig = z.output<typeof processingPipelineSchema>;
export type SerializerConfig = z.output<typeof serializerSchema>;
export type HandlerConfig = z.output<typeof handlerSchema>;

/** The per-event shape a GenericRandomNumpyArray's array_shape names. */
export function shapeOf(arrayShape: string | number[]): number[] {
  return typeof arrayShape === "string" ? arrayShape.split(",").map((s) => Number(s.trim())) : arrayShape;
}

/** One problem of a config: where, and what is wrong. */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** How many problems a ConfigError shows whole; the rest are counted. */
export const shownProblems = 10;

/** Thrown for a config that does not validate; the message lists the problems by path, one a line. */
export class ConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
    source: string,
  ) {
    const shown = problems.slice(0, shownProblems).map((p) => `  ${p.path}: ${p.message}`);
    if (problems.length > shownProblems) shown.push(`  ... and ${problems.length - shownProblems} more`);
    super(`${source} is not a valid producer config:\n${shown.join("\n")}`);
  }
}

/** A config that validated, with what was noticed on the way (settings ignored, old spellings translated). */
export interface CheckedConfig {
  config: ProducerConfig;
  notes: string[];
}

/** Validates a parsed config (from YAML, JSON or a request's Struct); old lclstream configs are translated, with a note. */
export function readProducerConfig(value: unknown, source = "the config"): CheckedConfig {
  const notes: string[] = [];
  if (value && typeof value === "object" && "lclstreamer" in value) {
    throw new ConfigError(
      [
        {
          path: "lclstreamer",
          message:
            "this is lclstreamer's layout from before its November 2025 release (a top-level lclstreamer: section, sections keyed by class name), which lclstreamer refuses too: move source_identifier and skip_incomplete_events to the top, write each section as { type: ClassName, ... }, and data_handlers as a list",
        },
      ],
      source,
    );
  }
  const translated = translateOldDialect(value);
  if (translated) {
    notes.push(translated.note);
    value = translated.config;
  }
  const parsed = producerConfigSchema.safeParse(value);
  if (!parsed.success)
    throw new ConfigError(
      parsed.error.issues.map((issue) => describeIssue(issue, value)),
      source,
    );
  notes.push(...ignoredKeys(parsed.data, value));
  return { config: parsed.data, notes };
}

/** Validates a parsed config; see {@link readProducerConfig}. */
export function parseProducerConfig(value: unknown, source = "the config"): ProducerConfig {
  return readProducerConfig(value, source).config;
}

/** The value at `path` of `root`, if there is one. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let at = root;
  for (const key of path) {
    if (at === null || typeof at !== "object") return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

/** A value as it is quoted in an error: JSON, cut short. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The type names a discriminated union allows, by the path of its `type`. */
const unionTypes: [RegExp, readonly string[]][] = [
  [/^event_source$/, eventSourceSchema.options.map((o) => o.shape.type.value)],
  [/^data_sources\.[^.]+$/, dataSourceSchema.options.map((o) => o.shape.type.value)],
  [/^processing_pipeline$/, processingPipelineSchema.options.map((o) => o.shape.type.value)],
  [/^processing_pipeline\.steps\.\d+$/, stepSchema.options.map((o) => o.shape.type.value)],
  [/^data_serializer$/, serializerSchema.options.map((o) => o.shape.type.value)],
  [/^data_handlers\.\d+$/, handlerSchema.options.map((o) => o.shape.type.value)],
];

/** One line for one issue: the path, what is wrong, what was given and what is allowed. */
function describeIssue(issue: z.core.$ZodIssue, input: unknown): ConfigProblem {
  const path = issue.path.map(String).join(".") || "(top)";
  const given = valueAt(input, issue.path);
  if (issue.code === "unrecognized_keys") {
    return { path, message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.join(", ")}` };
  }
  if (issue.code === "invalid_union" && "discriminator" in issue && issue.discriminator) {
    // The issue sits at the union's `type` (zod 4) or at the union itself.
    const atType = issue.path.at(-1) === issue.discriminator;
    const unionPath = atType ? issue.path.slice(0, -1).map(String).join(".") : path;
    const type = atType ? given : valueAt(given, [issue.discriminator]);
    const types = unionTypes.find(([re]) => re.test(unionPath))?.[1] ?? [];
    return {
      path: atType ? path : `${path}.${issue.discriminator}`,
      message: `${type === undefined ? "is required" : `${quote(type)} is not a known type`}; one of ${types.join(", ")}`,
    };
  }
  if (given === undefined && issue.code === "invalid_type") return { path, message: `is required (${issue.expected})` };
  // A value the message already names is not quoted again; an object only outside custom checks (they say what is wrong with it).
  const primitive = given === null || typeof given !== "object";
  const quotable = given !== undefined && (primitive ? !issue.message.includes(String(given)) : issue.code !== "custom");
  return { path, message: quotable ? `${issue.message}; given ${quote(given)}` : issue.message };
}

/** Notes for the keys lclstreamer ignores and so does this producer: inside InternalEventSource and lclstreamer's data sources. */
function ignoredKeys(config: ProducerConfig, input: unknown): string[] {
  const notes: string[] = [];
  const check = (path: string, parsedKeys: string[], raw: unknown) => {
    if (!raw || typeof raw !== "object") return;
    for (const key of Object.keys(raw))
      if (!parsedKeys.includes(key)) notes.push(`${path}.${key}: not a setting of this type; ignored, as lclstreamer ignores it`);
  };
  if (config.event_source.type === "InternalEventSource") check("event_source", Object.keys(internalEventSource.shape), valueAt(input, ["event_source"]));
  for (const [name, source] of Object.entries(config.data_sources)) {
    const schema = lclstreamerDataSources.find((s) => s.shape.type.value === source.type);
    if (schema) check(`data_sources.${name}`, Object.keys(schema.shape), valueAt(input, ["data_sources", name]));
  }
  return notes;
}
