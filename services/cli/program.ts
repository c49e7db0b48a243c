/** The `lclstream` command's commands and options. */
import { Command } from "commander";
import { packageInfo } from "../common/package-info.js";
import { addExamples } from "./examples.js";

type Register = (program: Command) => void;

/**
 * The modules that define the commands, in the order help lists them. Each
 * is loaded only when one of its commands runs: loading every service's code
 * was most of any command's start-up (0.40 s, against 0.13 s for none), and a
 * producer rank or a server carried all of it in its heap.
 */
const health = async () => (await import("./health.js")).registerHealthCommand;
const ca = async () => (await import("./ca.js")).registerCaCommands;
const jobs = async () => (await import("./jobs.js")).registerJobsCommands;
const buffer = async () => (await import("./buffer.js")).registerBufferCommands;
const config = async () => (await import("./config.js")).registerConfigCommands;
const produce = async () => (await import("./produce.js")).registerProduceCommand;
const requests = async () => (await import("./requests.js")).registerRequestCommands;
const sampleData = async () => (await import("./sample-data.js")).registerSampleDataCommands;
const demo = async () => (await import("./demo.js")).registerDemoCommand;
const everyModule = [health, ca, jobs, buffer, config, produce, requests, sampleData, demo];

/** The module of each top-level command (a test checks this against what each module defines). */
export const moduleOfCommand: Record<string, () => Promise<Register>> = {
  health,
  ca,
  enroll: ca,
  renew: ca,
  jobs,
  buffer,
  config,
  producer: produce,
  produce,
  requests,
  up: requests,
  get: requests,
  view: requests,
  "sample-data": sampleData,
  demo,
};

/**
 * The program, with the commands `argv` runs (its first word after the
 * options), or every command when that is not one (help, a typo).
 */
export async function createProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command("lclstream")
    .description("Stream X-ray facility detector data over mutually authenticated gRPC.")
    .version(packageInfo().version, "-V, --version", "print the lclstream version")
    .showHelpAfterError("(run with --help for usage)")
    // --log-file (on `up` and every serve command): the services' loggers append there (see common/logger.ts).
    .hook("preAction", (_, command) => {
      const { logFile } = command.opts<{ logFile?: string }>();
      if (logFile) process.env.LCLSTREAM_LOG_FILE = logFile;
    });
  const first = argv.slice(2).find((word) => !word.startsWith("-"));
  const only = first === undefined ? undefined : moduleOfCommand[first];
  for (const register of await Promise.all(only ? [only()] : everyModule.map((load) => load()))) register(program);
  addExamples(program);
  return program;
}
