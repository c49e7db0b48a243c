/**
 * The producer's configuration, lclstreamer-style (YAML or JSON):
 *
 *   source_identifier: synthetic:run=1     # names the run, for catalogs and files
 *   batch_size: 16
 *   skip_incomplete_events: false
 *   event_source: { type: synthetic, seed: 7, events: 1000, rate_hz: 120 }
 *   data_sources:                           # the fields of every event
 *     jungfrau: { type: area_detector, geometry: jungfrau4M, peaks: { min: 10, max: 40 } }
 *     tof:      { type: digitizer, channels: 4, samples: 4096 }
 *     pulse_energy: { type: scalar, mean: 3.5, sigma: 0.2 }
 *     timestamp: { type: timestamp }
 *   processing_pipeline:
 *     - { step: peak_finder, field: jungfrau }
 *   data_serializer: { type: native }       # or { type: hdf5, compression: gzip }
 *   data_handlers: [ { type: buffer } ]     # or { type: file, prefix: out/run1 }
 *
 * Validated strictly: an unknown key, a wrong type or value fails with the
 * path and what is allowed. The same object is the `producer` part of a data
 * request.
 */
import { z } from "zod";
import { dtypes } from "./ndarray.js";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const dtype = z.enum(dtypes as [string, ...string[]]);
const shape = z.array(positiveInt).max(8);

/** Detector geometries of real instruments (frames are panels x height x width, or height x width). */
export const geometries = {
  jungfrau4M: { shape: [2048, 2048], dtype: "uint16" },
  jungfrau1M: { shape: [1024, 1024], dtype: "uint16" },
  epix10k2M: { shape: [16, 352, 384], dtype: "uint16" },
  rayonix: { shape: [1920, 1920], dtype: "uint16" },
  small: { shape: [256, 256], dtype: "uint16" },
} as const;

const areaDetector = z.strictObject({
  type: z.literal("area_detector"),
  geometry: z
    .union([z.enum(Object.keys(geometries) as [keyof typeof geometries]), z.strictObject({ shape, dtype })], {
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
});

const digitizer = z.strictObject({
  type: z.literal("digitizer"),
  channels: positiveInt.max(64).default(4),
  samples: positiveInt.max(1 << 20).default(4096),
  /** Time-of-flight hits per channel (uniform in [min, max]). */
  hits: z.strictObject({ min: nonNegativeInt.default(2), max: nonNegativeInt.default(12) }).default({ min: 2, max: 12 }),
  amplitude: z.number().positive().default(400),
  /** Pulse width (Gaussian sigma) in samples. */
  width: z.number().positive().default(2.5),
  noise: z.number().nonnegative().default(4),
  baseline: z.number().default(0),
  truth: z.boolean().default(false),
});

const scalar = z.strictObject({
  type: z.literal("scalar"),
  mean: z.number().default(1),
  sigma: z.number().nonnegative().default(0.1),
  dtype: z.enum(["float32", "float64"]).default("float64"),
});

const timestamp = z.strictObject({ type: z.literal("timestamp") });

const randomArray = z.strictObject({
  type: z.literal("random_array"),
  shape,
  dtype: dtype.default("float32"),
});

const hdf5Dataset = z.strictObject({
  type: z.literal("hdf5_dataset"),
  /** Path of the dataset inside each file; events along axis 0. */
  path: z.string().startsWith("/"),
});

export const dataSourceSchema = z.discriminatedUnion("type", [areaDetector, digitizer, scalar, timestamp, randomArray, hdf5Dataset]);

const syntheticSource = z.strictObject({
  type: z.literal("synthetic"),
  seed: nonNegativeInt.default(1),
  events: positiveInt.default(1000),
  /** Events per second of facility time for timestamps (120 Hz at LCLS); 0 produces as fast as possible. */
  rate_hz: z.number().nonnegative().default(120),
  /** Real-time pacing: wait to produce at rate_hz. */
  paced: z.boolean().default(false),
});

const randomSource = z.strictObject({
  type: z.literal("random"),
  seed: nonNegativeInt.default(1),
  events: positiveInt.default(1000),
});

const hdf5Source = z.strictObject({
  type: z.literal("hdf5"),
  files: z.array(z.string().min(1)).min(1),
  shuffle: z.boolean().default(false),
  seed: nonNegativeInt.default(1),
  /** Resume from this linear index of the (shuffled) event order. */
  start_event: nonNegativeInt.default(0),
});

export const eventSourceSchema = z.discriminatedUnion("type", [syntheticSource, randomSource, hdf5Source]);

const field = z.string().min(1);
export const stepSchema = z.discriminatedUnion("step", [
  z.strictObject({
    step: z.literal("pad_crop"),
    field,
    height: positiveInt,
    width: positiveInt,
    anchor: z.enum(["center", "bottom_right"]).default("center"),
    channel_dim: z.boolean().default(true),
  }),
  z.strictObject({ step: z.literal("roi"), field, y0: nonNegativeInt, y1: positiveInt, x0: nonNegativeInt, x1: positiveInt }),
  z.strictObject({ step: z.literal("bin"), field, factor: positiveInt.max(64) }),
  z.strictObject({ step: z.literal("threshold"), field, value: z.number() }),
  z.strictObject({
    step: z.literal("peak_finder"),
    field,
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
    step: z.literal("tof_hits"),
    field,
    /** Constant-fraction discrimination: fraction, delay in samples, and a threshold on the pulse height. */
    fraction: z.number().positive().max(1).default(0.5),
    delay: positiveInt.default(3),
    threshold: z.number().positive().default(50),
    /** Pulses are negative-going (MCP) when true. */
    negative: z.boolean().default(true),
    max_hits: positiveInt.max(4096).default(64),
  }),
]);

export const serializerSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("native") }),
  z.strictObject({
    type: z.literal("hdf5"),
    compression: z.enum(["none", "gzip"]).default("none"),
    gzip_level: z.number().int().min(1).max(9).default(4),
    /** Dataset path per field; default `/data/<field>`. */
    paths: z.record(z.string(), z.string().startsWith("/")).default({}),
  }),
]);

export const handlerSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("buffer"),
    /** The buffer and stream; by default from LCLSTREAM_BUFFER_URL, LCLSTREAM_STREAM and LCLSTREAM_PUBLISH_TOKEN. */
    url: z.string().url().optional(),
    stream: z.string().optional(),
    token: z.string().optional(),
  }),
  z.strictObject({
    type: z.literal("file"),
    /** Files are `{prefix}_r{rank}_{counter}.{suffix}`. */
    prefix: z.string().min(1),
    suffix: z
      .string()
      .regex(/^[A-Za-z0-9]+$/)
      .optional(),
  }),
]);

export const producerConfigSchema = z
  .strictObject({
    source_identifier: z.string().min(1).default("synthetic:run=1"),
    batch_size: positiveInt.max(100_000).default(16),
    skip_incomplete_events: z.boolean().default(false),
    event_source: eventSourceSchema,
    data_sources: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "field names are letters, digits and _"), dataSourceSchema)
      .refine((s) => Object.keys(s).length > 0, "name at least one data source"),
    processing_pipeline: z.array(stepSchema).default([]),
    data_serializer: serializerSchema.default({ type: "native" }),
    data_handlers: z.array(handlerSchema).default([]),
  })
  .superRefine((config, ctx) => {
    // Which data sources each event source can fill.
    const fits: Record<string, string[]> = {
      synthetic: ["area_detector", "digitizer", "scalar", "timestamp"],
      random: ["random_array", "timestamp"],
      hdf5: ["hdf5_dataset"],
    };
    const allowed = fits[config.event_source.type]!;
    for (const [name, source] of Object.entries(config.data_sources)) {
      if (!allowed.includes(source.type)) {
        ctx.addIssue({
          code: "custom",
          path: ["data_sources", name, "type"],
          message: `a ${config.event_source.type} event source cannot fill a ${source.type}; allowed here: ${allowed.join(", ")}`,
        });
      }
    }
  });

export type ProducerConfig = z.output<typeof producerConfigSchema>;
export type DataSourceConfig = z.output<typeof dataSourceSchema>;
export type StepConfig = z.output<typeof stepSchema>;

/** Thrown for a config that does not validate; the message lists every problem by path. */
export class ConfigError extends Error {
  constructor(
    readonly problems: { path: string; message: string }[],
    source: string,
  ) {
    super(`${source} is not a valid producer config:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")}`);
  }
}

/** Validates a parsed config (from YAML, JSON or a request's Struct). */
export function parseProducerConfig(value: unknown, source = "the config"): ProducerConfig {
  const parsed = producerConfigSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => {
      const path = issue.path.map(String).join(".") || "(top)";
      if (issue.code === "unrecognized_keys") return { path, message: `unknown key(s) ${issue.keys.join(", ")}` };
      return { path, message: issue.message };
    }),
    source,
  );
}
