/** The `lclstream` command. */
import { Command } from "commander";
import { packageInfo } from "./package-info.js";
import { registerHealthCommand } from "./health.js";
import { registerDemoCommand } from "./demo.js";

export function createProgram(): Command {
  const program = new Command("lclstream")
    .description("Stream X-ray facility detector data over mutually authenticated gRPC.")
    .version(packageInfo().version, "-v, --version", "print the lclstream version")
    .showHelpAfterError("(run with --help for usage)");
  registerHealthCommand(program);
  registerDemoCommand(program);
  return program;
}

createProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    console.error(`lclstream: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
