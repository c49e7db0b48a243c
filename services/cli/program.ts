/** The `lclstream` command's commands and options. */
import { Command } from "commander";
import { packageInfo } from "../common/package-info.js";
import { registerHealthCommand } from "./health.js";
import { registerDemoCommand } from "./demo.js";
import { registerCaCommands } from "./ca.js";
import { registerConfigCommands } from "./config.js";
import { addExamples } from "./examples.js";
import { registerJobsCommands } from "./jobs.js";
import { registerBufferCommands } from "./buffer.js";
import { registerProduceCommand } from "./produce.js";
import { registerRequestCommands } from "./requests.js";
import { registerSampleDataCommands } from "./sample-data.js";

export function createProgram(): Command {
  const program = new Command("lclstream")
    .description("Stream X-ray facility detector data over mutually authenticated gRPC.")
    .version(packageInfo().version, "-V, --version", "print the lclstream version")
    .showHelpAfterError("(run with --help for usage)")
    // --log-file (on `up` and every serve command): the services' loggers append there (see common/logger.ts).
    .hook("preAction", (_, command) => {
      const { logFile } = command.opts<{ logFile?: string }>();
      if (logFile) process.env.LCLSTREAM_LOG_FILE = logFile;
    });
  registerHealthCommand(program);
  registerCaCommands(program);
  registerJobsCommands(program);
  registerBufferCommands(program);
  registerConfigCommands(program);
  registerProduceCommand(program);
  registerRequestCommands(program);
  registerSampleDataCommands(program);
  registerDemoCommand(program);
  addExamples(program);
  return program;
}
