/** A waveform's time axis in the viewer: psana's per-sample times first, then the producer config's sample interval, else samples. */
import { describe, expect, it } from "vitest";
import { parseProducerConfig } from "../../services/producer/config.js";
import { niceTicks, SYNTHETIC_DIGITIZER_INTERVAL_NS, waveformTime } from "../../viewer/src/time-axis.js";

describe("waveform time axis", () => {
  it("takes psana's sample times (seconds) from a <field>_times companion", () => {
    const times = { shape: [2, 4], values: [1e-6, 1.5e-6, 2e-6, 2.5e-6, 1e-6, 1.5e-6, 2e-6, 2.5e-6] };
    const axis = waveformTime("tof", times, { data_sources: { tof: { sample_interval_ns: 7 } } })!;
    expect(axis.startNs).toBeCloseTo(1000);
    expect(axis.stepNs).toBeCloseTo(500);
  });

  it("takes the data source's sample_interval_ns, or the synthetic digitizer's default, from the producer config", () => {
    expect(waveformTime("tof", undefined, { data_sources: { tof: { type: "SyntheticDigitizer", sample_interval_ns: 0.25 } } })).toEqual({
      startNs: 0,
      stepNs: 0.25,
    });
    expect(waveformTime("tof", undefined, { data_sources: { tof: { type: "SyntheticDigitizer" } } })?.stepNs).toBe(SYNTHETIC_DIGITIZER_INTERVAL_NS);
    expect(waveformTime("tof", undefined, { data_sources: { other: { sample_interval_ns: 1 } } })).toBeUndefined();
    expect(waveformTime("tof", undefined, undefined)).toBeUndefined();
  });

  it("knows the synthetic digitizer's default as the producer's config schema sets it", () => {
    const config = parseProducerConfig({
      source_identifier: "synthetic:tof:run=1",
      skip_incomplete_events: false,
      event_source: { type: "InternalEventSource", number_of_events_to_generate: 1 },
      data_sources: { tof: { type: "SyntheticDigitizer" } },
      processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 1 },
      data_serializer: { type: "NativeBinarySerializer" },
      data_handlers: [],
    });
    expect(config.data_sources.tof).toMatchObject({ sample_interval_ns: SYNTHETIC_DIGITIZER_INTERVAL_NS });
  });

  it("ticks at round values", () => {
    expect(niceTicks(0, 640)).toEqual([0, 200, 400, 600]);
    expect(niceTicks(0, 4096)).toEqual([0, 1000, 2000, 3000, 4000]);
    expect(niceTicks(1000, 1001, 4)).toEqual([1000, 1000.5, 1001]);
  });
});
