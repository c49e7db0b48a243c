/** `lclstream config check`: lclstreamer's own configs, as a user checks them before running anything. */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { lclstream } from "../helpers/cli.js";

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/lclstreamer/${name}`, import.meta.url));
const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));

describe("lclstream config check", () => {
  it("accepts lclstreamer-internal.yaml as it is and says what will run", async () => {
    const r = await lclstream(["config", "check", fixture("lclstreamer-internal.yaml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "valid: InternalEventSource (3 data sources) -> BatchProcessingPipeline (batch_size 10) -> HDF5BinarySerializer -> BinaryDataStreamingDataHandler",
    );
    expect(r.stderr).toBe("");
  });

  it("prints the config as it will run, with every default, with --json", async () => {
    const r = await lclstream(["config", "check", "--json", fixture("lclstreamer-psana2-tmo.yaml")]);
    expect(r.code).toBe(0);
    const config = JSON.parse(r.stdout);
    expect(config.data_handlers).toEqual([{ type: "BinaryFileWritingDataHandler", file_prefix: "", file_suffix: "h5", write_directory: "workspace/output" }]);
    expect(config.data_sources.timestamp).toEqual({ type: "Psana2Timestamp" });
  });

  it("fails a psana1 config in one line naming Psana1EventSource", async () => {
    const r = await lclstream(["config", "check", fixture("lclstreamer-psana1.yaml")]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([
      `${fixture("lclstreamer-psana1.yaml")} is not valid:`,
      expect.stringMatching(/^ {2}event_source\.type: Psana1EventSource cannot run here/),
    ]);
  });

  it("checks a request file: its producer part, as the request service runs it", async () => {
    const r = await lclstream(["config", "check", example("ml-training.yaml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("valid request: HDF5EventSource (2 data sources) -> PeaknetPreprocessingPipeline (batch_size 4) -> HDF5BinarySerializer");
  });

  it("refuses lclstreamer's pre-November-2025 layout, and a missing file, plainly", async () => {
    const old = await lclstream(["config", "check", fixture("lclstreamer-psana1-simplon.yml")]);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/lclstreamer: this is lclstreamer's layout from before its November 2025 release/);
    const missing = await lclstream(["config", "check", "no-such-config.yaml"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe("cannot read no-such-config.yaml: no such file");
  });
});
