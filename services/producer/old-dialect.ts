/**
 * lclstream's first config dialect (event_source.type synthetic, a list of
 * processing steps, serializer native or hdf5, handlers buffer or file),
 * translated into lclstreamer's layout with a one-line deprecation note, so
 * that configs and scripts written for it keep running. Nothing else reads it.
 */
import { basename, dirname } from "node:path";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

const oldEventSources: Record<string, string> = { synthetic: "InternalEventSource", random: "InternalEventSource", hdf5: "HDF5EventSource" };
const oldDataSources: Record<string, string> = {
  area_detector: "SyntheticAreaDetector",
  digitizer: "SyntheticDigitizer",
  scalar: "SyntheticScalar",
  timestamp: "SyntheticTimestamp",
  random_array: "GenericRandomNumpyArray",
  hdf5_dataset: "HDF5Dataset",
};
const oldSteps: Record<string, string> = {
  peak_finder: "PeakFinder",
  tof_hits: "TimeOfFlightHits",
  roi: "RegionOfInterest",
  bin: "Binning",
  threshold: "Threshold",
  pad_crop: "PadCrop",
};

/** Whether `value` is written in the old dialect (any of its marks). */
function isOldDialect(value: Json): boolean {
  const type = (v: unknown) => (isObject(v) ? v.type : undefined);
  return (
    "batch_size" in value ||
    Array.isArray(value.processing_pipeline) ||
    String(type(value.event_source)) in oldEventSources ||
    ["native", "hdf5"].includes(String(type(value.data_serializer))) ||
    (Array.isArray(value.data_handlers) && value.data_handlers.some((h) => ["buffer", "file"].includes(String(type(h)))))
  );
}

/** The old config in lclstreamer's layout, or undefined when it is not in the old dialect. */
export function translateOldDialect(value: unknown): { config: Json; note: string } | undefined {
  if (!isObject(value) || !isOldDialect(value)) return undefined;
  const { batch_size, processing_pipeline, event_source, data_sources, data_serializer, data_handlers, ...rest } = value;
  const config: Json = { source_identifier: "synthetic:run=1", skip_incomplete_events: false, ...rest };

  if (isObject(event_source)) {
    const { type, events, ...settings } = event_source;
    const to = oldEventSources[String(type)] ?? type;
    config.event_source = to === "InternalEventSource" ? { type: to, number_of_events_to_generate: events ?? 1000, ...settings } : { type: to, ...settings };
  } else config.event_source = event_source;

  config.data_sources = isObject(data_sources)
    ? Object.fromEntries(
        Object.entries(data_sources).map(([name, s]) => {
          if (!isObject(s)) return [name, s];
          if (s.type === "random_array") return [name, { type: "GenericRandomNumpyArray", array_shape: s.shape, array_dtype: s.dtype ?? "float32" }];
          return [name, { ...s, type: oldDataSources[String(s.type)] ?? s.type }];
        }),
      )
    : data_sources;

  const stepList = Array.isArray(processing_pipeline) ? processing_pipeline : [];
  config.processing_pipeline = {
    type: "BatchProcessingPipeline",
    batch_size: batch_size ?? 16,
    steps: stepList.map((s) => {
      if (!isObject(s)) return s;
      const { step, field, anchor, ...settings } = s;
      return {
        type: oldSteps[String(step)] ?? step,
        data_source: field,
        ...(anchor === undefined ? {} : { anchor: anchor === "bottom_right" ? "bottom-right" : anchor }),
        ...settings,
      };
    }),
  };

  const serializer = isObject(data_serializer) ? data_serializer : { type: "native" };
  let suffix = "pb";
  if (serializer.type === "hdf5") {
    suffix = "h5";
    const { compression, gzip_level, paths } = serializer;
    const names = isObject(config.data_sources) ? Object.keys(config.data_sources) : [];
    config.data_serializer = {
      type: "HDF5BinarySerializer",
      compression: compression === "gzip" ? "gzip" : null,
      compression_level: gzip_level ?? 4,
      // The old serializer wrote every field, at its path or /data/<name>.
      ...(isObject(paths) && Object.keys(paths).length ? { fields: { ...Object.fromEntries(names.map((n) => [n, `/data/${n}`])), ...paths } } : {}),
    };
  } else if (serializer.type === "native") config.data_serializer = { type: "NativeBinarySerializer" };
  else config.data_serializer = serializer;

  config.data_handlers = (Array.isArray(data_handlers) ? data_handlers : []).map((h) => {
    if (!isObject(h)) return h;
    const { type, prefix, suffix: own, ...settings } = h;
    if (type === "buffer") return { type: "BufferStreamingDataHandler", ...settings };
    if (type === "file") {
      const p = String(prefix ?? "");
      return { type: "BinaryFileWritingDataHandler", write_directory: dirname(p), file_prefix: basename(p), file_suffix: own ?? suffix, ...settings };
    }
    return h;
  });

  return {
    config,
    note: "deprecated: this config is in lclstream's first dialect, read here as lclstreamer's layout; `lclstream config check --json FILE` prints it that way",
  };
}
