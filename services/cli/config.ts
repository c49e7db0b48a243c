/**
 * `lclstream config check FILE`: validates a producer config (an lclstreamer
 * config) or a request file without starting anything, as a request's
 * validate_only does, and prints what will run, or the normalized config.
 */
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fromJson } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { DataRequestSchema } from "../../gen/lclstream/request/v1/request_pb.js";
import { badRequest } from "../common/errors.js";
import { type ProducerConfig, shownProblems } from "../producer/config.js";
import { checkConfig } from "../producer/producer-service.js";
import { psanaPython } from "../producer/sources/psana.js";
import { producerConfigOf } from "../request/request-service.js";
import { requestFromFile } from "./requests.js";

/** Whether the producer's Python imports psana (what Psana2EventSource runs on). */
function psanaImports(): boolean {
  return spawnSync(psanaPython(), ["-c", "import psana"], { stdio: "ignore", timeout: 60_000 }).status === 0;
}

/** One line on what a config runs. */
function summary(c: ProducerConfig): string {
  const handlers = c.data_handlers.map((h) => h.type).join(", ") || "no handlers";
  return `${c.event_source.type} (${Object.keys(c.data_sources).length} data sources) -> ${c.processing_pipeline.type} (batch_size ${c.processing_pipeline.batch_size}) -> ${c.data_serializer.type} -> ${handlers}`;
}

export function registerConfigCommands(program: Command): void {
  const config = program.command("config").description("producer configs (lclstreamer's layout)");
  config
    .command("check")
    .description("validate a producer config or a request file without starting anything")
    .argument("<file>", "an lclstreamer config, or a request file with a producer: part (YAML or JSON)")
    .option("--json", "print the config as it will run, defaults filled in, as JSON")
    .option("--data-root <dir...>", "also check that HDF5 files lie in these directories, as the request service does")
    .addHelpText("after", "\nExamples:\n  lclstream config check lclstreamer-internal.yaml\n  lclstream config check examples/crystallography.yaml --json")
    .action(async (file: string, o: { json?: boolean; dataRoot?: string[] }) => {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        console.error(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
        process.exit(2);
      }
      const value = requestFromFile(text);
      const isRequest = value.producer !== undefined && Object.keys(value).some((k) => k !== "producer");
      try {
        const checked = isRequest
          ? producerConfigOf(fromJson(DataRequestSchema, value, { ignoreUnknownFields: false }), o.dataRoot)
          : checkConfig(value.producer, o.dataRoot, "config");
        if (checked.config.event_source.type === "Psana2EventSource" && !psanaImports()) {
          checked.notes.push(
            `event_source: ${psanaPython()} has no psana (scripts/install-system-deps.sh installs it, or set LCLSTREAM_PSANA_PYTHON); the config is valid, and runs where psana is`,
          );
        }
        if (o.json) console.log(JSON.stringify(checked.config, null, 2));
        else console.log(`${file}: valid${isRequest ? " request" : ""}: ${summary(checked.config)}`);
        for (const note of checked.notes) console.error(`note: ${note}`);
      } catch (error) {
        const e = ConnectError.from(error);
        const violations = badRequest(e)?.fieldViolations ?? [];
        console.error(`${file} is not valid:`);
        // A config file's paths are its own (the API's are under config. or data_request.producer.).
        const lines = violations.map((v) => `  ${isRequest ? v.field.replace(/^data_request\./, "") : v.field.replace(/^config\./, "")}: ${v.description}`);
        if (!lines.length) lines.push(`  ${e.rawMessage}`);
        for (const line of lines.slice(0, shownProblems)) console.error(line);
        if (lines.length > shownProblems) console.error(`  ... and ${lines.length - shownProblems} more`);
        process.exit(1);
      }
    });
}
